//! `sweep matches`: rule matches from `sweep.matches`, from the start of the
//! topic to its current end, or on and on with `--follow`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use rdkafka::Offset;
use sweep_proto::{topics, MatchRecord};

use crate::cli::MatchesArgs;
use crate::config::Settings;
use crate::kafka::TopicReader;
use crate::output::{Format, RowWriter};
use crate::{render, ControllerError};

const COLUMNS: [&str; 6] = ["time", "severity", "rule", "host", "title", "row"];

pub async fn run(settings: &Settings, args: MatchesArgs) -> Result<u8, ControllerError> {
    let format = args.format.format();
    if args.follow && !format.streams() {
        return Err(ControllerError::Usage(
            "--follow writes matches as they come, and a JSON array is only whole at its end: use --format ndjson".into(),
        ));
    }
    topics::ensure(&settings.kafka, &[topics::MATCHES]).await?;
    let reader = TopicReader::new(&settings.kafka, topics::MATCHES)?;
    let ends = reader.end_offsets()?;
    let starts: BTreeMap<i32, Offset> = ends.keys().map(|p| (*p, Offset::Beginning)).collect();
    reader.assign(&starts)?;
    let mut remaining: BTreeMap<i32, i64> = ends.into_iter().filter(|(_, end)| *end > 0).collect();
    let out = std::io::stdout().lock();
    let mut rows = if args.follow {
        RowWriter::following(out, format, &COLUMNS)?
    } else {
        RowWriter::new(out, format, &COLUMNS)?
    }
    .clip(&["row"]);
    loop {
        if !args.follow && remaining.is_empty() {
            break;
        }
        let Some(rec) = reader.next(Duration::from_millis(500)).await? else {
            continue;
        };
        if let Some(end) = remaining.get(&rec.partition) {
            if rec.offset + 1 >= *end {
                remaining.remove(&rec.partition);
            }
        }
        let m = match MatchRecord::from_json(&rec.payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "skipping a malformed match");
                continue;
            }
        };
        let json = serde_json::to_string(&m).expect("matches serialize");
        rows.row_with(cells(&m), json)?;
        rows.flush()?;
    }
    let n = rows.finish()?;
    if format == Format::Table && !args.follow {
        writeln!(std::io::stdout().lock(), "{n} match(es)")?;
    }
    Ok(0)
}

/// A match's cells, its row as `k=v` text whole (a table cuts it).
fn cells(m: &MatchRecord) -> Vec<String> {
    vec![
        sweep_proto::time::calendar_time(m.last_seen),
        m.severity.clone(),
        m.rule_id.clone(),
        m.host.clone(),
        m.title.clone(),
        render::pairs(&m.row),
    ]
}
