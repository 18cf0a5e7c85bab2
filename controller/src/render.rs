//! Text for people: tables (comfy-table), and cells: ages, sizes, targets,
//! row summaries. [`crate::output`] picks between these and JSON or CSV.

use std::collections::BTreeMap;

use comfy_table::{ContentLineStyle, LineStyle, Table, TableStyle};
use sweep_proto::text::printable;
use sweep_proto::Targets;

/// The table look sweep has always had (and the agent's shell has, as
/// osqueryi): `+---+` rules, `|` between cells, no line between rows.
const STYLE: TableStyle = TableStyle::new()
    .top_border(LineStyle::new('+', '-', '+', '+'))
    .header_lines(ContentLineStyle::new('|', '|', '|'))
    .header_separator(LineStyle::new('+', '-', '+', '+'))
    .content_lines(ContentLineStyle::new('|', '|', '|'))
    .bottom_border(LineStyle::new('+', '-', '+', '+'));

/// A text table of `columns` and `rows`, as wide as its cells (long free
/// text is cut by the caller: see [`truncate`]); empty without columns.
/// Every cell is made printable: a row from a hostile host is shown, never
/// obeyed, by the terminal.
pub fn table(columns: &[String], rows: &[Vec<String>]) -> String {
    if columns.is_empty() {
        return String::new();
    }
    let mut t = Table::new();
    // Without rows, the rule under the header is the bottom border: drawn
    // once, not twice.
    t.load_style(if rows.is_empty() {
        STYLE.header_separator(LineStyle::none())
    } else {
        STYLE
    });
    t.set_header(columns.iter().map(|c| printable(c).into_owned()));
    for r in rows {
        t.add_row(r.iter().map(|v| printable(v).into_owned()));
    }
    let mut text = t.to_string();
    text.push('\n');
    text
}

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
    truncate(&pairs(row), CELL_WIDTH)
}

/// A row's columns as `k=v k=v`, whole.
pub fn pairs(row: &BTreeMap<String, String>) -> String {
    row.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
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
        // No rows: the header alone, closed.
        let t = table(&["a".into()], &[]);
        assert_eq!(t, "+---+\n| a |\n+---+\n");
        assert_eq!(table(&[], &[]), "");
        let t = table(&["x".into()], &[vec!["\u{1b}]0;owned\u{7}".into()]]);
        assert!(!t.contains('\u{1b}') && !t.contains('\u{7}'), "{t:?}");
    }
}
