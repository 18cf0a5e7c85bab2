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
use crate::{render, ControllerError};

pub async fn run(settings: &Settings, args: MatchesArgs) -> Result<u8, ControllerError> {
    topics::ensure(&settings.kafka, &[topics::MATCHES]).await?;
    let reader = TopicReader::new(&settings.kafka, topics::MATCHES)?;
    let ends = reader.end_offsets()?;
    let starts: BTreeMap<i32, Offset> = ends.keys().map(|p| (*p, Offset::Beginning)).collect();
    reader.assign(&starts)?;
    let mut remaining: BTreeMap<i32, i64> = ends.into_iter().filter(|(_, end)| *end > 0).collect();
    let mut shown = Vec::new();
    let mut out = std::io::stdout().lock();
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
        if args.json {
            writeln!(
                out,
                "{}",
                serde_json::to_string(&m).expect("matches serialize")
            )?;
        } else if args.follow {
            writeln!(out, "{}", line(&m))?;
        } else {
            shown.push(m);
        }
        out.flush()?;
    }
    if !args.json {
        let columns: Vec<String> = ["time", "severity", "rule", "host", "title", "row"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let rows: Vec<Vec<String>> = shown.iter().map(cells).collect();
        write!(out, "{}", render::table(&columns, &rows))?;
        writeln!(out, "{} match(es)", shown.len())?;
    }
    Ok(0)
}

fn cells(m: &MatchRecord) -> Vec<String> {
    vec![
        sweep_proto::time::calendar_time(m.last_seen),
        m.severity.clone(),
        m.rule_id.clone(),
        m.host.clone(),
        m.title.clone(),
        render::row_summary(&m.row),
    ]
}

fn line(m: &MatchRecord) -> String {
    cells(m).join("  ")
}
