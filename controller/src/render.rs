//! Terminal output: aligned tables for people, NDJSON for programs.

use std::collections::BTreeMap;

use sweep_proto::Targets;

pub use sweep_proto::text::table;

/// Longest cell of free text (a row's columns, a query) in a table.
pub const CELL_WIDTH: usize = 80;

/// Text cut to `max` characters, with `...` where it was cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() > max {
        text.chars().take(max.saturating_sub(3)).collect::<String>() + "..."
    } else {
        text.to_string()
    }
}

/// A row's columns as `k=v k=v`, cut to fit a table cell.
pub fn row_summary(row: &BTreeMap<String, String>) -> String {
    let text = row
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    truncate(&text, CELL_WIDTH)
}

/// Whom a command targets: `all`, or its hosts and labels.
pub fn targets(t: &Targets) -> String {
    if t.is_all() {
        return "all".into();
    }
    let mut parts = Vec::new();
    if !t.hosts.is_empty() {
        parts.push(format!("hosts={}", t.hosts.join(",")));
    }
    if !t.labels.is_empty() {
        let labels: Vec<String> = t.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.push(format!("labels={}", labels.join(",")));
    }
    if !t.discovery.is_empty() {
        parts.push(format!("discovery={}", t.discovery.len()));
    }
    parts.join(" ")
}

/// A byte count for people: 12.3 MiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A duration in whole seconds for people: 3d4h, 5m12s, 40s.
pub fn age(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(age(59), "59s");
        assert_eq!(age(3725), "1h2m");
        assert_eq!(truncate("abcdef", 5), "ab...");
        assert_eq!(truncate("abcde", 5), "abcde");
        assert_eq!(targets(&Targets::all()), "all");
        let t = Targets {
            hosts: vec!["a".into(), "b".into()],
            labels: Targets::parse_selector("role=web").unwrap(),
            discovery: vec![],
        };
        assert_eq!(targets(&t), "hosts=a,b labels=role=web");
        let t = table(
            &["a".into(), "bb".into()],
            &[vec!["xyz".into(), "1".into()]],
        );
        assert_eq!(
            t,
            "+-----+----+\n| a   | bb |\n+-----+----+\n| xyz | 1  |\n+-----+----+\n"
        );
    }
}
