//! `sweep hunt "SQL"`: guard the SQL, write the hunt to etcd on a lease that
//! ends at its expiry, read the answers from `sweep.results`, show progress,
//! print the rows with the host id first, then name every live agent that
//! failed or did not answer.
//!
//! Exit codes: 0 when every live targeted agent answered without error,
//! 1 when some failed or did not answer (or none was targeted), 2 when the
//! query was refused before it was sent.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use etcd_client::PutOptions;
use rdkafka::Offset;
use sweep_proto::record::StatusBody;
use sweep_proto::signing::Kind;
use sweep_proto::text::printable;
use sweep_proto::time::unix_now;
use sweep_proto::{guard, tables, topics, Hunt, ResultsRecord};

use crate::cli::HuntArgs;
use crate::config::Settings;
use crate::kafka::TopicReader;
use crate::{fleet, operator, render, ControllerError};

/// How often the set of live agents is re-read while waiting: agents that
/// come online during the hunt run it too, and are waited for.
const FLEET_REFRESH: Duration = Duration::from_secs(1);

pub async fn run(settings: &Settings, args: HuntArgs) -> Result<u8, ControllerError> {
    if let Err(e) = guard::check(&args.sql, &tables::is_known) {
        eprintln!("Error: {e}");
        return Ok(2);
    }
    if let Some(why) = args.targets.refused_discovery() {
        eprintln!("Error: {why}");
        return Ok(2);
    }
    let targets = args.targets.targets()?;
    let keys = settings.etcd.keyspace();
    let mut client = settings.etcd.connect().await?;
    topics::ensure(&settings.kafka, &[topics::RESULTS], 1).await?;

    // Take the topic's end before the hunt exists, so no answer is missed.
    let reader = TopicReader::new(&settings.kafka, topics::RESULTS)?;
    let starts: BTreeMap<i32, Offset> = reader
        .end_offsets()?
        .into_iter()
        .map(|(p, o)| (p, Offset::Offset(o)))
        .collect();
    reader.assign(&starts)?;

    // Load the key before anything is written: a bad key path fails early.
    let signer = operator::signer(settings, "hunt")?;
    let now = unix_now();
    let hunt = Hunt {
        id: uuid::Uuid::new_v4().simple().to_string()[..16].to_string(),
        sql: args.sql.clone(),
        targets: targets.clone(),
        issued_at: now,
        expires_at: now + args.expiry.as_secs().max(1),
        issuer: operator::issuer(),
    };
    let stored = operator::seal(signer.as_ref(), Kind::Hunt, hunt.to_json());
    let lease = client
        .lease_grant(args.expiry.as_secs().max(1) as i64, None)
        .await?
        .id();
    client
        .put(
            keys.hunt(&hunt.id),
            stored.to_json(),
            Some(PutOptions::new().with_lease(lease)),
        )
        .await?;
    let started = Instant::now();
    let mut progress = Progress::new(&hunt.id);

    let mut expected: BTreeSet<String> = fleet::targeted(&mut client, &keys, &targets)
        .await?
        .into_iter()
        .map(|a| a.host_id)
        .collect();
    let mut answers = Answers::new(&hunt.id);
    let mut last_refresh = Instant::now();
    let deadline = started + args.timeout;

    loop {
        progress.show(
            answers.answered.len(),
            expected.len(),
            answers.rows.len(),
            started.elapsed(),
        );
        if !expected.is_empty() && expected.iter().all(|h| answers.answered.contains_key(h)) {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if last_refresh.elapsed() >= FLEET_REFRESH {
            // Only grow the set: an agent that died mid-hunt is still reported
            // as not having answered.
            for a in fleet::targeted(&mut client, &keys, &targets).await? {
                expected.insert(a.host_id);
            }
            last_refresh = Instant::now();
        }
        let wait = (deadline - now).min(Duration::from_millis(200));
        if let Some(rec) = reader.next(wait).await? {
            if let Some(host) = answers.absorb(&rec.payload) {
                expected.insert(host);
            }
        }
    }
    let elapsed = started.elapsed();
    progress.finish(
        answers.answered.len(),
        expected.len(),
        answers.rows.len(),
        elapsed,
    );
    answers.report(&expected, args.json, Some(args.timeout), elapsed)
}

/// What has come back for one hunt: rows per host and each host's status.
pub struct Answers {
    hunt_id: String,
    pub rows: Vec<(String, BTreeMap<String, String>)>,
    pub answered: BTreeMap<String, StatusBody>,
    columns: Vec<String>,
    /// (host, row number) of the rows taken, to drop redeliveries.
    seen: std::collections::HashSet<(String, u64)>,
}

impl Answers {
    pub fn new(hunt_id: &str) -> Self {
        Self {
            hunt_id: hunt_id.to_string(),
            rows: Vec::new(),
            answered: BTreeMap::new(),
            columns: Vec::new(),
            seen: std::collections::HashSet::new(),
        }
    }

    /// Takes one record off `sweep.results`; returns the host id when it was
    /// that host's status for this hunt.
    pub fn absorb(&mut self, payload: &[u8]) -> Option<String> {
        match ResultsRecord::from_json(payload) {
            Ok(r) if r.hunt_id() == Some(self.hunt_id.as_str()) => match r {
                ResultsRecord::Row(row) => {
                    // A row delivered twice (at-least-once, after an outage)
                    // carries the same number: counted once.
                    if let Some(seq) = row.seq {
                        if !self.seen.insert((row.host_identifier.clone(), seq)) {
                            return None;
                        }
                    }
                    self.rows.push((row.host_identifier, row.columns));
                    None
                }
                ResultsRecord::Status(s) => {
                    if self.columns.is_empty() {
                        self.columns = s.status.columns.clone();
                    }
                    let host = s.host_identifier.clone();
                    self.answered.insert(s.host_identifier, s.status);
                    Some(host)
                }
            },
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(error = %e, "skipping a record that is not sweep's");
                None
            }
        }
    }

    /// Prints the rows (stdout) and who failed or stayed silent (stderr);
    /// returns the exit code.
    pub fn report(
        mut self,
        expected: &BTreeSet<String>,
        json: bool,
        waited: Option<Duration>,
        elapsed: Duration,
    ) -> Result<u8, ControllerError> {
        // A host's rows only count once its status arrived: rows without a
        // status would be a partial answer.
        let answered = std::mem::take(&mut self.answered);
        self.rows.retain(|(host, _)| answered.contains_key(host));
        self.rows.sort_by(|a, b| a.0.cmp(&b.0));
        if self.columns.is_empty() {
            let mut seen = BTreeSet::new();
            for (_, r) in &self.rows {
                for c in r.keys() {
                    if seen.insert(c.clone()) {
                        self.columns.push(c.clone());
                    }
                }
            }
        }
        print_rows(&self.columns, &self.rows, json)?;
        // A host's rows arrive before its status (one partition per host):
        // fewer rows than the status counts means some were lost on the way
        // (refused by the broker, quarantined on the agent) or are forged.
        let mut arrived: BTreeMap<&str, u64> = BTreeMap::new();
        for (host, _) in &self.rows {
            *arrived.entry(host.as_str()).or_default() += 1;
        }
        let mismatched: Vec<(&String, String)> = answered
            .iter()
            .filter(|(h, s)| {
                s.error.is_none() && arrived.get(h.as_str()).copied().unwrap_or(0) != s.rows
            })
            .map(|(h, s)| {
                let got = arrived.get(h.as_str()).copied().unwrap_or(0);
                let why = if got < s.rows {
                    "lost on the way: see the agent's quarantine and metrics"
                } else {
                    "sent twice after a broker outage, or rows not from this agent"
                };
                (
                    h,
                    format!("sent {} row(s) but {got} arrived ({why})", s.rows),
                )
            })
            .collect();
        let mut failed: Vec<(&String, &String)> = answered
            .iter()
            .filter_map(|(h, s)| s.error.as_ref().map(|e| (h, e)))
            .collect();
        failed.extend(mismatched.iter().map(|(h, why)| (*h, why)));
        let silent: Vec<&String> = expected
            .iter()
            .filter(|h| !answered.contains_key(*h))
            .collect();
        let skipped: Vec<(&String, &String)> = answered
            .iter()
            .filter_map(|(h, s)| s.skipped.as_ref().map(|why| (h, why)))
            .collect();
        let mut err = std::io::stderr().lock();
        // Host ids and errors come from agents, and may come from a hostile
        // one: shown, never obeyed, by the terminal.
        for (host, error) in &failed {
            writeln!(err, "{}: {}", printable(host), printable(error))?;
        }
        for (host, why) in &skipped {
            writeln!(err, "{}: skipped: {}", printable(host), printable(why))?;
        }
        for host in &silent {
            match waited {
                Some(t) => writeln!(
                    err,
                    "{}: did not answer within {}",
                    printable(host),
                    humantime::format_duration(t)
                )?,
                None => writeln!(err, "{}: has not answered", printable(host))?,
            }
        }
        let all = expected.union(&answered.keys().cloned().collect()).count();
        writeln!(
            err,
            "hunt {}: {} row(s) from {} of {} agent(s) in {:.2}s; {} failed, {} did not answer{}",
            self.hunt_id,
            self.rows.len(),
            answered.len(),
            all,
            elapsed.as_secs_f64(),
            failed.len(),
            silent.len(),
            if skipped.is_empty() {
                String::new()
            } else {
                format!(", {} skipped by discovery", skipped.len())
            }
        )?;
        if all == 0 {
            writeln!(err, "no live agent matches the targets")?;
            return Ok(1);
        }
        Ok(if failed.is_empty() && silent.is_empty() {
            0
        } else {
            1
        })
    }
}

fn print_rows(
    columns: &[String],
    rows: &[(String, BTreeMap<String, String>)],
    json: bool,
) -> Result<(), ControllerError> {
    let mut out = std::io::stdout().lock();
    if json {
        for (host, cols) in rows {
            let mut obj = serde_json::Map::new();
            obj.insert("host_id".into(), host.clone().into());
            for c in columns {
                obj.insert(c.clone(), cols.get(c).cloned().unwrap_or_default().into());
            }
            writeln!(out, "{}", serde_json::Value::Object(obj))?;
        }
        return Ok(());
    }
    let mut header = vec!["host_id".to_string()];
    header.extend(columns.iter().cloned());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(host, cols)| {
            std::iter::once(host.clone())
                .chain(
                    columns
                        .iter()
                        .map(|c| cols.get(c).cloned().unwrap_or_default()),
                )
                .collect()
        })
        .collect();
    write!(out, "{}", render::table(&header, &cells))?;
    Ok(())
}

/// The live progress line on stderr: rewritten in place on a terminal, a
/// line every few seconds otherwise.
struct Progress {
    hunt_id: String,
    tty: bool,
    last: Option<Instant>,
}

impl Progress {
    fn new(hunt_id: &str) -> Self {
        Self {
            hunt_id: hunt_id.to_string(),
            tty: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn text(&self, answered: usize, alive: usize, rows: usize, elapsed: Duration) -> String {
        format!(
            "hunt {}: {answered}/{alive} agents answered, {rows} rows, {:.1}s",
            self.hunt_id,
            elapsed.as_secs_f64()
        )
    }

    fn show(&mut self, answered: usize, alive: usize, rows: usize, elapsed: Duration) {
        let every = if self.tty {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(2)
        };
        if self.last.is_some_and(|l| l.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        let text = self.text(answered, alive, rows, elapsed);
        if self.tty {
            eprint!("\r\x1b[2K{text}");
        } else {
            eprintln!("{text}");
        }
    }

    fn finish(&mut self, answered: usize, alive: usize, rows: usize, elapsed: Duration) {
        if self.tty {
            eprint!("\r\x1b[2K");
        } else {
            eprintln!("{}", self.text(answered, alive, rows, elapsed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: Option<u64>) -> Vec<u8> {
        serde_json::to_vec(&sweep_proto::ResultRow {
            name: "hunt:h".into(),
            host_identifier: "a".into(),
            calendar_time: String::new(),
            unix_time: 1,
            epoch: 0,
            counter: 0,
            decorations: BTreeMap::new(),
            columns: [("x".to_string(), "1".to_string())].into(),
            action: "snapshot".into(),
            hunt_id: Some("h".into()),
            seq,
        })
        .unwrap()
    }

    #[test]
    fn a_row_delivered_twice_counts_once() {
        let mut answers = Answers::new("h");
        for r in [row(Some(1)), row(Some(1)), row(Some(2))] {
            answers.absorb(&r);
        }
        assert_eq!(answers.rows.len(), 2);
        // Rows without a number (older agents) are all kept.
        for r in [row(None), row(None)] {
            answers.absorb(&r);
        }
        assert_eq!(answers.rows.len(), 4);
    }
}
