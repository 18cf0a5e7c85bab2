//! Plain-text tables, the way osqueryi prints them; the agent's shell and the
//! controller print results alike.

use std::fmt::Write as _;

/// An ASCII table with a header; empty when there are no columns.
pub fn table(columns: &[String], rows: &[Vec<String>]) -> String {
    if columns.is_empty() {
        return String::new();
    }
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |v| v.chars().count()))
                .chain([c.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (v, w) in cells.zip(&widths) {
            let _ = write!(s, "| {v}{} ", " ".repeat(w - v.chars().count()));
        }
        s.push_str("|\n");
        s
    };
    let mut s = rule.clone();
    s.push_str(&line(&mut columns.iter().map(String::as_str)));
    s.push_str(&rule);
    for r in rows {
        s.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    if !rows.is_empty() {
        s.push_str(&rule);
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns_columns() {
        let t = super::table(
            &["a".into(), "bb".into()],
            &[vec!["xyz".into(), "1".into()]],
        );
        assert_eq!(
            t,
            "+-----+----+\n| a   | bb |\n+-----+----+\n| xyz | 1  |\n+-----+----+\n"
        );
        assert_eq!(super::table(&[], &[]), "");
    }
}
