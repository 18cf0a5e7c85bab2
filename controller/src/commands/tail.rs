//! `sweep tail`: result rows of scheduled queries and packs from
//! `sweep.results` — or, with `--query 'hunt:…'`, hunts' rows from
//! `sweep.hunts` — from the start of the topic to its current end, or on and
//! on with `--follow`. Status and seal records are not rows and are skipped.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use rdkafka::Offset;
use sweep_proto::{topics, ResultRow, ResultsRecord};

use crate::cli::TailArgs;
use crate::config::Settings;
use crate::kafka::TopicReader;
use crate::output::{Format, RowWriter};
use crate::{names, render, ControllerError};

const COLUMNS: [&str; 5] = ["time", "host", "name", "action", "columns"];

/// How long the broker may stay silent before the end of the topic is
/// reached (without `--follow`) before giving up.
const STALL: Duration = Duration::from_secs(10);

pub async fn run(settings: &Settings, args: TailArgs) -> Result<u8, ControllerError> {
    match read(settings, &args).await {
        // `sweep tail | head`: the reader went away; that is not an error.
        Err(ControllerError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        other => other,
    }
}

async fn read(settings: &Settings, args: &TailArgs) -> Result<u8, ControllerError> {
    let format = args.format.format();
    if args.follow && !format.streams() {
        return Err(ControllerError::Usage(
            "--follow writes rows as they come, and a JSON array is only whole at its end: use --format ndjson".into(),
        ));
    }
    topics::ensure(&settings.kafka, &[topics::RESULTS, topics::HUNTS]).await?;
    let topic = match &args.query {
        Some(q) if q.starts_with("hunt:") => topics::HUNTS,
        _ => topics::RESULTS,
    };
    let reader = TopicReader::new(&settings.kafka, topic)?;
    let bounds = reader.bounds()?;
    let starts: BTreeMap<i32, Offset> = bounds.keys().map(|p| (*p, Offset::Beginning)).collect();
    reader.assign(&starts)?;
    // Partitions with records left to read, and the offset that ends each.
    let mut remaining: BTreeMap<i32, i64> = bounds
        .into_iter()
        .filter(|(_, (low, high))| high > low)
        .map(|(p, (_, high))| (p, high))
        .collect();
    let filter = Filter {
        query: args.query.clone(),
        host: args.host.clone(),
    };
    // A table is drawn once every row is in, in time order; the other
    // formats, and --follow, write each row as it comes.
    let sorted = format == Format::Table && !args.follow;
    let mut table: Vec<(u64, Vec<String>)> = Vec::new();
    let out = std::io::stdout().lock();
    let mut rows = if args.follow {
        RowWriter::following(out, format, &COLUMNS)?
    } else {
        RowWriter::new(out, format, &COLUMNS)?
    }
    .clip(&["columns"]);
    let mut last_heard = Instant::now();
    loop {
        if !args.follow && remaining.is_empty() {
            break;
        }
        let Some(rec) = reader.next(Duration::from_millis(500)).await? else {
            if !args.follow && last_heard.elapsed() > STALL {
                return Err(ControllerError::Usage(format!(
                    "the broker stopped sending before the end of {}",
                    topic
                )));
            }
            continue;
        };
        last_heard = Instant::now();
        if remaining
            .get(&rec.partition)
            .is_some_and(|end| rec.offset + 1 >= *end)
        {
            remaining.remove(&rec.partition);
        }
        let row = match ResultsRecord::from_json(&rec.payload) {
            Ok(ResultsRecord::Row(row)) => row,
            Ok(ResultsRecord::Status(_) | ResultsRecord::Run(_)) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "skipping a record that is not sweep's");
                continue;
            }
        };
        if !filter.matches(&row) {
            continue;
        }
        if sorted {
            table.push((row.unix_time, cells(&row)));
            continue;
        }
        // json and ndjson: osquery's result-log JSON.
        let json = serde_json::to_string(&row).expect("rows serialize");
        rows.row_with(cells(&row), json)?;
        if args.follow {
            rows.flush()?;
        }
    }
    // Partitions interleave; people read rows in time order.
    table.sort_by_key(|(t, _)| *t);
    for (_, cells) in table {
        rows.row(cells)?;
    }
    let n = rows.finish()?;
    if sorted {
        writeln!(std::io::stdout().lock(), "{n} row(s)")?;
    }
    Ok(0)
}

/// Which rows to show: `*` patterns over the query name and the host id.
struct Filter {
    query: Option<String>,
    host: Option<String>,
}

impl Filter {
    fn matches(&self, row: &ResultRow) -> bool {
        self.query
            .as_deref()
            .is_none_or(|p| names::glob(p, &row.name))
            && self
                .host
                .as_deref()
                .is_none_or(|p| names::glob(p, &row.host_identifier))
    }
}

/// A row's cells: its columns as `k=v` text, whole (a table cuts them).
fn cells(row: &ResultRow) -> Vec<String> {
    vec![
        if row.calendar_time.is_empty() {
            sweep_proto::time::calendar_time(row.unix_time)
        } else {
            row.calendar_time.clone()
        },
        row.host_identifier.clone(),
        row.name.clone(),
        row.action.clone(),
        render::pairs(&row.columns),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, host: &str) -> ResultRow {
        ResultRow {
            name: name.into(),
            host_identifier: host.into(),
            calendar_time: String::new(),
            unix_time: 0,
            epoch: 0,
            counter: 0,
            decorations: BTreeMap::new(),
            columns: [("uid".to_string(), "0".to_string())].into_iter().collect(),
            action: "added".into(),
            hunt_id: None,
            seq: None,
        }
    }

    #[test]
    fn filters_by_query_pattern_and_host() {
        let all = Filter {
            query: None,
            host: None,
        };
        assert!(all.matches(&row("users", "web-1")));
        let packs = Filter {
            query: Some("pack_*".into()),
            host: Some("web-*".into()),
        };
        assert!(packs.matches(&row("pack_ir_users", "web-1")));
        assert!(!packs.matches(&row("users", "web-1")));
        assert!(!packs.matches(&row("pack_ir_users", "db-1")));
        let hunts = Filter {
            query: Some("hunt:*".into()),
            host: Some("db-1".into()),
        };
        assert!(hunts.matches(&row("hunt:abc", "db-1")));
        assert!(!hunts.matches(&row("hunt:abc", "db-10")));
    }

    #[test]
    fn cells_fall_back_to_unix_time() {
        let c = cells(&row("users", "web-1"));
        assert_eq!(c[0], sweep_proto::time::calendar_time(0));
        assert_eq!(c[1..], ["web-1", "users", "added", "uid=0"]);
    }
}
