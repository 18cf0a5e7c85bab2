//! Rows out, in the format the operator asked for: one writer for every
//! command that prints rows (hunt results, `results`, `tail`, `matches`,
//! `agents`, `schedule list`, `pack list`) and for `sweep hunt --output FILE`.
//!
//! - `table`: a text table for people ([`crate::render::table`]); long
//!   free-text cells cut to [`CELL_WIDTH`].
//! - `json`: one JSON array, an object a line.
//! - `ndjson`: one JSON object per line (what `--json` has always printed).
//! - `csv`: RFC 4180 with a header: the table's columns, uncut.
//!
//! A command gives column names and, per row, its cells; json and ndjson
//! print an object of column → cell, or the command's own richer object
//! (a heartbeat, a stored schedule) when it has one.

use std::io::{self, Write};
use std::path::Path;

use clap::{Args, ValueEnum};
use sweep_proto::text::printable;

use crate::render::{table, truncate, CELL_WIDTH};

/// How rows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// A text table for people.
    #[default]
    Table,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// RFC 4180 CSV with a header row (CRLF line ends).
    Csv,
}

impl Format {
    /// The format a file's extension names (`.csv`, `.json`, `.ndjson` or
    /// `.jsonl`), or why there is none.
    pub fn of_path(path: &Path) -> Result<Self, String> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("csv") => Ok(Self::Csv),
            Some("json") => Ok(Self::Json),
            Some("ndjson" | "jsonl") => Ok(Self::Ndjson),
            Some(other) => Err(format!(
                "unknown file type `.{other}`: name the file .csv, .json, .ndjson or .jsonl"
            )),
            None => Err(
                "no file extension to tell the format: name the file .csv, .json, .ndjson or .jsonl"
                    .into(),
            ),
        }
    }

    /// Whether rows can be written one by one as they come (`--follow`): a
    /// JSON array is only whole once it is closed.
    pub fn streams(self) -> bool {
        self != Self::Json
    }
}

/// `--format`, and the `--json` it grew from.
#[derive(Args, Debug, Default, Clone)]
pub struct FormatArgs {
    /// How rows are printed (default: table); csv has the table's columns,
    /// uncut.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
    /// Same as --format ndjson (kept for scripts that use it).
    #[arg(long, hide = true, conflicts_with = "format")]
    pub json: bool,
}

impl FormatArgs {
    pub fn format(&self) -> Format {
        match (self.json, self.format) {
            (true, _) => Format::Ndjson,
            (false, Some(f)) => f,
            (false, None) => Format::Table,
        }
    }
}

/// Rows to `out` in one format, one at a time; [`finish`](Self::finish)
/// ends them (a table is drawn then, sized to all its rows).
pub struct RowWriter<W: Write> {
    sink: Sink<W>,
    columns: Vec<String>,
    /// Columns of free text a table cuts to `CELL_WIDTH`.
    clipped: Vec<bool>,
    rows: usize,
}

enum Sink<W: Write> {
    Table {
        out: W,
        cells: Vec<Vec<String>>,
    },
    /// A table's cells one line per row, for rows that keep coming.
    Lines(W),
    Json(W),
    Ndjson(W),
    /// Boxed: the CSV writer carries its buffer state, ten times the rest.
    Csv(Box<csv::Writer<W>>),
}

impl<W: Write> RowWriter<W> {
    /// A writer of rows with these columns; a CSV header is written at once.
    pub fn new(out: W, format: Format, columns: &[&str]) -> io::Result<Self> {
        Self::start(out, format, columns, false)
    }

    /// As [`new`](Self::new), for rows that keep coming (`--follow`): a
    /// table becomes a line per row as it comes. `format` must stream.
    pub fn following(out: W, format: Format, columns: &[&str]) -> io::Result<Self> {
        Self::start(out, format, columns, true)
    }

    fn start(out: W, format: Format, columns: &[&str], follow: bool) -> io::Result<Self> {
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        let sink = match format {
            Format::Table if follow => Sink::Lines(out),
            Format::Table => Sink::Table {
                out,
                cells: Vec::new(),
            },
            Format::Json => Sink::Json(out),
            Format::Ndjson => Sink::Ndjson(out),
            Format::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(out);
                w.write_record(columns.iter().map(|c| csv_text(c)))
                    .map_err(csv_io)?;
                Sink::Csv(Box::new(w))
            }
        };
        Ok(Self {
            sink,
            clipped: vec![false; columns.len()],
            columns,
            rows: 0,
        })
    }

    /// Cuts these columns' cells to `CELL_WIDTH` in a table (the other
    /// formats have them whole).
    pub fn clip(mut self, columns: &[&str]) -> Self {
        for (c, clip) in self.columns.iter().zip(&mut self.clipped) {
            *clip |= columns.contains(&c.as_str());
        }
        self
    }

    /// A row of cells, one per column; json and ndjson print them as an
    /// object of column → cell.
    pub fn row(&mut self, cells: Vec<String>) -> io::Result<()> {
        self.write(cells, None)
    }

    /// A row whose json and ndjson form is `json` (one serialized JSON
    /// object, e.g. a stored schedule as it is stored) rather than its cells.
    pub fn row_with(&mut self, cells: Vec<String>, json: String) -> io::Result<()> {
        self.write(cells, Some(json))
    }

    fn write(&mut self, cells: Vec<String>, json: Option<String>) -> io::Result<()> {
        debug_assert_eq!(cells.len(), self.columns.len(), "a cell per column");
        let object = |cells: &[String]| match json {
            Some(o) => o,
            None => serde_json::Value::Object(
                self.columns
                    .iter()
                    .cloned()
                    .zip(cells.iter().cloned().map(serde_json::Value::from))
                    .collect(),
            )
            .to_string(),
        };
        match &mut self.sink {
            Sink::Table { cells: all, .. } => {
                let cells = cells
                    .into_iter()
                    .zip(&self.clipped)
                    .map(|(c, clip)| if *clip { truncate(&c, CELL_WIDTH) } else { c })
                    .collect();
                all.push(cells);
            }
            Sink::Lines(out) => {
                let line: Vec<String> = cells
                    .iter()
                    .zip(&self.clipped)
                    .map(|(c, clip)| {
                        let c = printable(c);
                        if *clip {
                            truncate(&c, CELL_WIDTH)
                        } else {
                            c.into_owned()
                        }
                    })
                    .collect();
                writeln!(out, "{}", line.join("  "))?;
            }
            Sink::Json(out) => {
                let sep = if self.rows == 0 { "[\n" } else { ",\n" };
                write!(out, "{sep}{}", object(&cells))?;
            }
            Sink::Ndjson(out) => writeln!(out, "{}", object(&cells))?,
            Sink::Csv(w) => w
                .write_record(cells.iter().map(|c| csv_text(c)))
                .map_err(csv_io)?,
        }
        self.rows += 1;
        Ok(())
    }

    /// Pushes rows written so far out (`--follow`); a table has none yet.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Table { .. } => Ok(()),
            Sink::Lines(out) | Sink::Json(out) | Sink::Ndjson(out) => out.flush(),
            Sink::Csv(w) => w.flush(),
        }
    }

    /// Ends the rows (draws the table, closes the JSON array); returns how
    /// many there were.
    pub fn finish(self) -> io::Result<usize> {
        match self.sink {
            Sink::Table { mut out, cells } => {
                write!(out, "{}", table(&self.columns, &cells))?;
                out.flush()?;
            }
            Sink::Lines(mut out) | Sink::Ndjson(mut out) => out.flush()?,
            Sink::Json(mut out) => {
                if self.rows == 0 {
                    writeln!(out, "[]")?;
                } else {
                    writeln!(out, "\n]")?;
                }
                out.flush()?;
            }
            Sink::Csv(mut w) => w.flush()?,
        }
        Ok(self.rows)
    }
}

/// `rows` with `columns`, all at once.
pub fn write_rows(
    out: impl Write,
    format: Format,
    columns: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> io::Result<usize> {
    let mut w = RowWriter::new(out, format, columns)?;
    for r in rows {
        w.row(r)?;
    }
    w.finish()
}

/// The I/O error under a CSV one as it is (`sweep tail | head` ends on a
/// broken pipe, which is no error).
fn csv_io(e: csv::Error) -> io::Error {
    if !e.is_io_error() {
        return io::Error::other(e);
    }
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// A CSV field's text: as printable as a table cell (a `cat` of the file
/// must not act on the terminal), except that line breaks stay, quoted by
/// the CSV writer, as the agent's CSV keeps them.
fn csv_text(v: &str) -> String {
    v.split('\n')
        .map(|line| {
            line.split('\r')
                .map(|p| printable(p).into_owned())
                .collect::<Vec<_>>()
                .join("\r")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: [&str; 3] = ["host_id", "name", "note"];

    /// Values that CSV must quote, and one a terminal must not obey.
    fn tricky() -> Vec<Vec<String>> {
        [
            ["web-1", "a,b", "say \"hi\""],
            ["web-2", "two\nlines", "cr\r\nlf"],
            ["db-1", "", "\u{1b}[2Jclear"],
        ]
        .iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
    }

    fn written(format: Format) -> String {
        let mut out = Vec::new();
        let n = write_rows(&mut out, format, &COLUMNS, tricky()).unwrap();
        assert_eq!(n, 3);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_quotes_commas_quotes_and_line_breaks() {
        let text = written(Format::Csv);
        assert!(text.contains("\"a,b\",\"say \"\"hi\"\"\""), "{text:?}");
        assert!(text.ends_with("\r\n"), "RFC 4180 line ends: {text:?}");
        // Read back by an independent parser: the header, then each value
        // whole (the escape sequence shown, not sent).
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            COLUMNS
        );
        let rows: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect();
        let mut want = tricky();
        want[2][2] = "\\e[2Jclear".into();
        assert_eq!(rows, want);
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn json_is_one_array_and_ndjson_an_object_a_line() {
        let as_objects = |rows: Vec<Vec<String>>| -> Vec<serde_json::Value> {
            rows.into_iter()
                .map(|r| {
                    serde_json::Value::Object(
                        COLUMNS
                            .iter()
                            .map(|c| c.to_string())
                            .zip(r.into_iter().map(serde_json::Value::from))
                            .collect(),
                    )
                })
                .collect()
        };
        let want = as_objects(tricky());
        let array: Vec<serde_json::Value> = serde_json::from_str(&written(Format::Json)).unwrap();
        assert_eq!(array, want);
        let text = written(Format::Ndjson);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines, want);
        // No rows: an empty array, no lines, a header alone.
        let none = |format| {
            let mut out = Vec::new();
            write_rows(&mut out, format, &COLUMNS, Vec::new()).unwrap();
            String::from_utf8(out).unwrap()
        };
        let empty: Vec<serde_json::Value> = serde_json::from_str(&none(Format::Json)).unwrap();
        assert!(empty.is_empty());
        assert_eq!(none(Format::Ndjson), "");
        assert_eq!(none(Format::Csv), "host_id,name,note\r\n");
    }

    #[test]
    fn an_object_of_its_own_replaces_the_cells_in_json() {
        let mut out = Vec::new();
        let mut w = RowWriter::new(&mut out, Format::Ndjson, &["a"]).unwrap();
        w.row_with(
            vec!["x".into()],
            serde_json::json!({"a": "x", "more": {"n": 1}}).to_string(),
        )
        .unwrap();
        w.finish().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["more"]["n"], 1);
    }

    #[test]
    fn tables_clip_free_text_only() {
        let mut out = Vec::new();
        let mut w = RowWriter::new(&mut out, Format::Table, &["id", "sql"])
            .unwrap()
            .clip(&["sql"]);
        w.row(vec!["q".repeat(100), "s".repeat(100)]).unwrap();
        w.row(vec!["evil".into(), "\u{1b}]0;owned\u{7}".into()])
            .unwrap();
        w.finish().unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(&"q".repeat(100)), "ids are not cut: {text}");
        assert!(text.contains(&format!("{}...", "s".repeat(CELL_WIDTH - 3))));
        assert!(!text.contains(&"s".repeat(CELL_WIDTH)), "{text}");
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
        // Rows that keep coming: a line each.
        let mut out = Vec::new();
        let mut w = RowWriter::following(&mut out, Format::Table, &["a", "b"]).unwrap();
        w.row(vec!["1".into(), "x\ny".into()]).unwrap();
        w.finish().unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "1  x\\ny\n");
    }

    #[test]
    fn file_extensions_name_formats() {
        assert_eq!(Format::of_path(Path::new("rows.csv")), Ok(Format::Csv));
        assert_eq!(Format::of_path(Path::new("r.JSON")), Ok(Format::Json));
        assert_eq!(Format::of_path(Path::new("r.ndjson")), Ok(Format::Ndjson));
        assert_eq!(Format::of_path(Path::new("r.jsonl")), Ok(Format::Ndjson));
        assert!(Format::of_path(Path::new("rows.txt"))
            .unwrap_err()
            .contains(".txt"));
        assert!(Format::of_path(Path::new("rows")).is_err());
    }
}
