//! One formatter for every way results leave the agent on a terminal:
//! `sweep-agent query` and the shell's `.mode` share it.

use std::fmt::Write as _;
use std::str::FromStr;
use sweep_proto::text::printable;

use rusqlite::types::Value;

use crate::engine::{value_to_string, QueryOutput};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An ASCII table, as osqueryi prints.
    Table,
    /// One `column = value` line per value, a blank line between rows.
    Line,
    /// A JSON array of row objects, numbers as numbers.
    Json,
    /// RFC 4180 CSV with a header.
    Csv,
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Self::Table),
            "line" => Ok(Self::Line),
            "json" => Ok(Self::Json),
            "csv" => Ok(Self::Csv),
            other => Err(format!(
                "unknown mode {other:?}: use table, line, json or csv"
            )),
        }
    }
}

/// Renders the rows of `out` (not its error: callers report that their way).
pub fn render(out: &QueryOutput, mode: Mode) -> String {
    // A query refused or failed before it had columns has nothing to show.
    if out.columns.is_empty() {
        return String::new();
    }
    match mode {
        Mode::Table => table(&out.columns, &out.rows),
        Mode::Line => line(&out.columns, &out.rows),
        Mode::Json => json(&out.columns, &out.rows),
        Mode::Csv => csv(&out.columns, &out.rows),
    }
}

fn table(columns: &[String], rows: &[Vec<Value>]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(value_to_string).collect())
        .collect();
    sweep_proto::text::table(columns, &cells)
}

fn line(columns: &[String], rows: &[Vec<Value>]) -> String {
    let width = columns.iter().map(|c| c.len()).max().unwrap_or(0);
    let mut s = String::new();
    for (n, r) in rows.iter().enumerate() {
        if n > 0 {
            s.push('\n');
        }
        for (c, v) in columns.iter().zip(r) {
            let _ = writeln!(
                s,
                "{:>width$} = {}",
                printable(c),
                printable(&value_to_string(v))
            );
        }
    }
    s
}

/// A value as JSON: numbers stay numbers, blobs become text.
pub fn json_value(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => (*i).into(),
        Value::Real(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        other => value_to_string(other).into(),
    }
}

fn json(columns: &[String], rows: &[Vec<Value>]) -> String {
    let array: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::Value::Object(
                columns
                    .iter()
                    .cloned()
                    .zip(r.iter().map(json_value))
                    .collect(),
            )
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&array).unwrap_or_else(|_| "[]".into());
    s.push('\n');
    s
}

/// A CSV field: quoted when it holds a comma, a quote or a line break; any
/// other control character is escaped, as everywhere text meets a terminal.
fn csv_field(v: &str) -> String {
    let v = printable_keeping_breaks(v);
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// [`printable`], but line breaks stay (CSV quotes them).
fn printable_keeping_breaks(v: &str) -> String {
    v.split('\n')
        .map(|part| {
            part.split('\r')
                .map(|p| printable(p).into_owned())
                .collect::<Vec<_>>()
                .join("\r")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn csv(columns: &[String], rows: &[Vec<Value>]) -> String {
    let mut s = columns
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",");
    s.push('\n');
    for r in rows {
        s.push_str(
            &r.iter()
                .map(|v| csv_field(&value_to_string(v)))
                .collect::<Vec<_>>()
                .join(","),
        );
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> QueryOutput {
        QueryOutput {
            columns: vec!["pid".into(), "name".into()],
            rows: vec![vec![Value::Integer(1), Value::Text("init, \"x\"".into())]],
            ..QueryOutput::default()
        }
    }

    #[test]
    fn formats_agree_on_values() {
        let out = sample();
        let t = render(&out, Mode::Table);
        assert!(t.contains("| pid | name      |"), "{t}");
        assert!(t.contains("| 1   | init, \"x\" |"), "{t}");
        assert_eq!(render(&out, Mode::Csv), "pid,name\n1,\"init, \"\"x\"\"\"\n");
        let j: serde_json::Value = serde_json::from_str(&render(&out, Mode::Json)).unwrap();
        assert_eq!(j[0]["pid"], 1);
        assert_eq!(render(&out, Mode::Line), " pid = 1\nname = init, \"x\"\n");
    }
}
