//! `sweep hunt "SQL"`: guard the SQL, write the hunt to etcd on a lease that
//! ends at its expiry, read the answers from `sweep.hunts`, show progress,
//! print the rows with the host id first, then say who failed or did not
//! answer, grouped by reason (a screenful at most; `--output FILE` has every
//! host's outcome).
//!
//! Exit codes: 0 when every live targeted agent answered without error,
//! 1 when some failed or did not answer (or none was targeted), 2 when the
//! query was refused before it was sent.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use etcd_client::PutOptions;
use rdkafka::Offset;
use sweep_proto::identity::{Forgery, RowDigest};
use sweep_proto::record::StatusBody;
use sweep_proto::signing::Kind;
use sweep_proto::text::printable;
use sweep_proto::time::unix_now;
use sweep_proto::{guard, topics, Hunt, HuntStatus, ResultsRecord};
use tracing::warn;

use crate::cli::HuntArgs;
use crate::config::Settings;
use crate::identities::Identities;
use crate::kafka::TopicReader;
use crate::progress::{self, Counts, HostOutcome, Limits, Outcome, Progress};
use crate::{fleet, operator, render, ControllerError};

/// How often the set of live agents is re-read while waiting, at the most:
/// agents that come online during the hunt run it too, and are waited for.
/// A large fleet is read less often (see [`refresh_after`]).
const FLEET_REFRESH: Duration = Duration::from_secs(1);

/// The pause before the fleet is read again: at least [`FLEET_REFRESH`],
/// and ten times what the last read took, so reading 10,000 heartbeats
/// never takes more than a tenth of the hunt's time from its answers.
fn refresh_after(read_took: Duration) -> Duration {
    FLEET_REFRESH.max(read_took * 10)
}

pub async fn run(settings: &Settings, args: HuntArgs) -> Result<u8, ControllerError> {
    if let Err(e) = guard::check(&args.sql) {
        eprintln!("Error: {e}");
        return Ok(2);
    }
    if let Some(why) = args.targets.refused_discovery() {
        eprintln!("Error: {why}");
        return Ok(2);
    }
    let targets = args.targets.targets()?;
    // Opened before anything is sent: a path that cannot be written stops
    // the hunt before it starts.
    let output = args
        .output
        .as_deref()
        .map(OutcomeFile::create)
        .transpose()?;
    let keys = settings.etcd.keyspace();
    let mut client = settings.etcd.connect().await?;
    topics::ensure(&settings.kafka, &[topics::RESULTS, topics::HUNTS]).await?;

    // The hunt's answers all go to one partition of sweep.hunts, chosen
    // here; its end is taken before the hunt exists, so no answer is missed
    // and nothing else is read.
    let id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
    let reader = TopicReader::new(&settings.kafka, topics::HUNTS)?;
    let ends = reader.end_offsets()?;
    let partitions: Vec<i32> = ends.keys().copied().collect();
    let partition = partitions[usize::from_str_radix(&id[..4], 16).unwrap_or(0) % partitions.len()];
    reader.assign(&[(partition, Offset::Offset(ends[&partition]))].into())?;

    // Load the key before anything is written: a bad key path fails early.
    let signer = operator::signer(settings, "hunt")?;
    let now = unix_now();
    let hunt = Hunt {
        id,
        sql: args.sql.clone(),
        targets: targets.clone(),
        issued_at: now,
        expires_at: now + args.expiry.as_secs().max(1),
        issuer: operator::issuer(),
        partition: Some(partition),
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

    let read = Instant::now();
    let live = fleet::targeted(&mut client, &keys, &targets).await?;
    let mut refresh_every = refresh_after(read.elapsed());
    let mut identities = Identities::load(&mut client, &keys, signer.as_ref()).await?;
    identities
        .observe(&mut client, &keys, signer.as_ref(), &live)
        .await?;
    let mut expected: BTreeSet<String> = live.into_iter().map(|a| a.host_id).collect();
    expected.extend(args.expect.hosts(&identities, &targets, now)?);
    let mut answers = Answers::new(&hunt.id, identities);
    let mut last_refresh = Instant::now();
    let deadline = started + args.timeout;

    loop {
        progress.tick(started.elapsed(), || answers.counts(expected.len()));
        // Every host that answered is in `expected` (an answer adds its
        // host), so counting is enough: no walk over 10,000 hosts per record.
        if !expected.is_empty() && answers.answered.len() >= expected.len() {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if last_refresh.elapsed() >= refresh_every {
            // Only grow the set: an agent that died mid-hunt is still reported
            // as not having answered.
            let read = Instant::now();
            let live = fleet::targeted(&mut client, &keys, &targets).await?;
            refresh_every = refresh_after(read.elapsed());
            answers
                .identities
                .observe(&mut client, &keys, signer.as_ref(), &live)
                .await?;
            expected.extend(live.into_iter().map(|a| a.host_id));
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
    progress.finish(answers.counts(expected.len()), elapsed);
    answers.report_to(
        &expected,
        args.json,
        Some(args.timeout),
        elapsed,
        output,
        Limits::default(),
    )
}

/// `--output FILE`: every host's outcome, one NDJSON object per host.
pub struct OutcomeFile {
    path: PathBuf,
    file: std::fs::File,
}

impl OutcomeFile {
    pub fn create(path: &Path) -> Result<Self, ControllerError> {
        let file = std::fs::File::create(path)
            .map_err(|e| ControllerError::Usage(format!("--output {}: {e}", path.display())))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    fn write(self, outcomes: &[HostOutcome]) -> Result<(), ControllerError> {
        let failed = |e: std::io::Error| {
            ControllerError::Usage(format!("--output {}: {e}", self.path.display()))
        };
        let mut out = BufWriter::new(&self.file);
        for o in outcomes {
            writeln!(out, "{}", o.to_line()).map_err(failed)?;
        }
        out.flush().map_err(failed)?;
        Ok(())
    }
}

/// What has come back for one hunt: rows per host and each host's status,
/// each status checked against the host's pinned identity key and the digest
/// of the rows that came before it.
pub struct Answers {
    hunt_id: String,
    identities: Identities,
    pub rows: Vec<(String, BTreeMap<String, String>)>,
    /// Hosts whose signed status verified.
    pub answered: BTreeMap<String, StatusBody>,
    /// Hosts with a record that did not verify, and why: reported as failed,
    /// never counted as answered.
    pub rejected: BTreeMap<String, String>,
    columns: Vec<String>,
    /// (host, row number) of the rows taken, to drop redeliveries.
    seen: HashSet<(String, u64)>,
    /// Each host's rows so far, as a digest in their numbered order.
    received: HashMap<String, Received>,
    /// Records read, this hunt's or not: what reading one partition saves.
    pub records_read: u64,
}

#[derive(Default)]
struct Received {
    /// Rows taken (redeliveries aside), in the digest or not.
    arrived: u64,
    /// The last row number added to the digest.
    last: u64,
    digest: RowDigest,
    /// Rows that came out of order or unnumbered: no digest can match.
    broken: bool,
}

impl Answers {
    pub fn new(hunt_id: &str, identities: Identities) -> Self {
        Self {
            hunt_id: hunt_id.to_string(),
            identities,
            rows: Vec::new(),
            answered: BTreeMap::new(),
            rejected: BTreeMap::new(),
            columns: Vec::new(),
            seen: HashSet::new(),
            received: HashMap::new(),
            records_read: 0,
        }
    }

    /// Takes one record off `sweep.results`; returns the host id when it was
    /// that host's status for this hunt.
    pub fn absorb(&mut self, payload: &[u8]) -> Option<String> {
        self.records_read += 1;
        match ResultsRecord::from_json(payload) {
            Ok(r) if r.hunt_id() == Some(self.hunt_id.as_str()) => match r {
                ResultsRecord::Row(row) => {
                    let host = row.host_identifier;
                    if self.answered.contains_key(&host) {
                        // The host's signed answer is complete: anything
                        // after it is someone else's.
                        self.rejected.entry(host).or_insert_with(|| {
                            "a row after the host's signed answer (not from this agent)".into()
                        });
                        return None;
                    }
                    let got = self.received.entry(host.clone()).or_default();
                    match row.seq {
                        // A row delivered twice (at-least-once, after an
                        // outage) carries the same number: counted once.
                        Some(seq) if !self.seen.insert((host.clone(), seq)) => return None,
                        Some(seq) if seq == got.last + 1 => {
                            got.digest.add(payload);
                            got.last = seq;
                        }
                        _ => got.broken = true,
                    }
                    got.arrived += 1;
                    self.rows.push((host, row.columns));
                    None
                }
                ResultsRecord::Status(s) => {
                    let host = s.host_identifier.clone();
                    match self.verify(&s) {
                        Ok(()) => {
                            if self.columns.is_empty() {
                                self.columns = s.status.columns.clone();
                            }
                            self.answered.insert(host.clone(), s.status);
                        }
                        Err(why) => {
                            warn!(host = %printable(&host), reason = %why, "rejected a hunt status");
                            self.rejected.insert(host.clone(), why);
                        }
                    }
                    Some(host)
                }
                ResultsRecord::Run(_) => None,
            },
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(error = %e, "skipping a record that is not sweep's");
                None
            }
        }
    }

    /// Whether `status` is the host's own, over exactly the rows received.
    fn verify(&self, status: &HuntStatus) -> Result<(), String> {
        let host = &status.host_identifier;
        let Some(key) = self.identities.key_for(host) else {
            return Err(format!("rejected answer: {}", Forgery::UnknownHost));
        };
        let empty = Received::default();
        let got = self.received.get(host).unwrap_or(&empty);
        let arrived = got.arrived;
        let verdict = if got.broken {
            Err(Forgery::RowsDiffer)
        } else {
            key.verify_status(status, &got.digest)
        };
        match verdict {
            Ok(()) => Ok(()),
            Err(Forgery::RowsDiffer) if arrived != status.status.rows => {
                let why = if arrived < status.status.rows {
                    "lost on the way: see the agent's quarantine and metrics"
                } else {
                    "rows not from this agent"
                };
                Err(format!(
                    "sent {} row(s) but {arrived} arrived ({why})",
                    status.status.rows
                ))
            }
            Err(f) => Err(format!("rejected answer: {f}")),
        }
    }

    /// Every host's outcome: the expected ones and any that answered, by
    /// host id. Expects `rows` to hold only answered hosts' rows.
    fn outcomes(&self, expected: &BTreeSet<String>, waited: Option<Duration>) -> Vec<HostOutcome> {
        let mut rows_of: HashMap<&str, u64> = HashMap::new();
        for (host, _) in &self.rows {
            *rows_of.entry(host.as_str()).or_default() += 1;
        }
        let silence = match waited {
            Some(t) => format!("did not answer within {}", humantime::format_duration(t)),
            None => "has not answered".to_string(),
        };
        expected
            .iter()
            .chain(self.answered.keys())
            .chain(self.rejected.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|host| {
                // A rejection outweighs an answer: a row after the signed
                // answer means someone else wrote in the host's name.
                let (outcome, reason) = match (self.rejected.get(host), self.answered.get(host)) {
                    (Some(why), _) => (Outcome::Rejected, Some(why.clone())),
                    (None, Some(s)) => match (&s.error, &s.skipped) {
                        (Some(e), _) => (Outcome::Failed, Some(e.clone())),
                        (None, Some(why)) => (Outcome::Skipped, Some(why.clone())),
                        (None, None) => (Outcome::Answered, None),
                    },
                    (None, None) => (Outcome::Silent, Some(silence.clone())),
                };
                HostOutcome {
                    host_id: host.clone(),
                    outcome,
                    rows: rows_of.get(host.as_str()).copied().unwrap_or(0),
                    reason,
                }
            })
            .collect()
    }

    /// Where the hunt stands, for its progress.
    pub fn counts(&self, targeted: usize) -> Counts {
        let failed = self
            .answered
            .iter()
            .filter(|(h, s)| s.error.is_some() && !self.rejected.contains_key(*h))
            .count();
        Counts {
            answered: self.answered.len(),
            targeted,
            rows: self.rows.len(),
            errors: failed + self.rejected.len(),
        }
    }

    /// Prints the rows (stdout) and who failed or stayed silent (stderr);
    /// returns the exit code.
    pub fn report(
        self,
        expected: &BTreeSet<String>,
        json: bool,
        waited: Option<Duration>,
        elapsed: Duration,
    ) -> Result<u8, ControllerError> {
        self.report_to(expected, json, waited, elapsed, None, Limits::default())
    }

    /// As [`report`](Self::report), also writing every host's outcome to
    /// `output`; on the terminal, who failed or stayed silent is grouped by
    /// reason within `limits`.
    pub fn report_to(
        mut self,
        expected: &BTreeSet<String>,
        json: bool,
        waited: Option<Duration>,
        elapsed: Duration,
        output: Option<OutcomeFile>,
        limits: Limits,
    ) -> Result<u8, ControllerError> {
        // A host's rows only count once its status arrived: rows without a
        // status would be a partial answer.
        let answered = &self.answered;
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
        // A host's rows arrive before its status (one partition per host),
        // and the status is signed over their digest: rows lost on the way
        // (refused by the broker, quarantined on the agent), added or
        // altered by anyone else show as a rejected answer.
        let outcomes = self.outcomes(expected, waited);
        let hint = match &output {
            Some(file) => format!(" (every host is in {})", file.path.display()),
            None if waited.is_some() => " (--output FILE lists every host)".to_string(),
            None => String::new(),
        };
        if let Some(file) = output {
            file.write(&outcomes)?;
        }
        let count = |o: Outcome| outcomes.iter().filter(|h| h.outcome == o).count();
        let failed = count(Outcome::Failed) + count(Outcome::Rejected);
        let silent = count(Outcome::Silent);
        let skipped = count(Outcome::Skipped);
        let mut err = std::io::stderr().lock();
        // Host ids and errors come from agents, and may come from a hostile
        // one: shown, never obeyed, by the terminal (summary_lines makes
        // them printable).
        for line in progress::summary_lines(&progress::groups(&outcomes), limits, &hint) {
            writeln!(err, "{line}")?;
        }
        let all = outcomes.len();
        writeln!(
            err,
            "hunt {}: {} row(s) from {} of {} agent(s) in {:.2}s; {} failed, {} did not answer{}; {} record(s) read",
            self.hunt_id,
            self.rows.len(),
            self.answered.len(),
            all,
            elapsed.as_secs_f64(),
            failed,
            silent,
            if skipped == 0 {
                String::new()
            } else {
                format!(", {skipped} skipped by discovery")
            },
            self.records_read
        )?;
        if all == 0 {
            writeln!(err, "no live agent matches the targets")?;
            return Ok(1);
        }
        Ok(if failed == 0 && silent == 0 { 0 } else { 1 })
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

#[cfg(test)]
mod tests {
    use super::*;

    use sweep_proto::identity::AgentKey;

    fn row(seq: Option<u64>) -> Vec<u8> {
        serde_json::to_vec(&sweep_proto::ResultRow {
            name: "hunt:h".into(),
            host_identifier: "a".into(),
            calendar_time: String::new(),
            unix_time: 1,
            epoch: 0,
            counter: 0,
            decorations: BTreeMap::new(),
            columns: [("x".to_string(), format!("{seq:?}"))].into(),
            action: "snapshot".into(),
            hunt_id: Some("h".into()),
            seq,
        })
        .unwrap()
    }

    fn status(key: &AgentKey, rows: &[&[u8]]) -> Vec<u8> {
        let mut digest = RowDigest::new();
        for r in rows {
            digest.add(r);
        }
        let mut s = HuntStatus {
            hunt_id: "h".into(),
            host_identifier: "a".into(),
            unix_time: 1,
            status: StatusBody {
                rows: rows.len() as u64,
                error: None,
                duration_ms: 1,
                columns: vec!["x".into()],
                skipped: None,
            },
            seal: None,
        };
        key.seal_status(&mut s, &digest);
        serde_json::to_vec(&s).unwrap()
    }

    fn answers_for(key: &AgentKey) -> Answers {
        Answers::new("h", Identities::from_keys([("a", key.public_hex())]))
    }

    #[test]
    fn a_row_delivered_twice_counts_once_and_the_answer_verifies() {
        let key = AgentKey::ephemeral([1; 32]);
        let mut answers = answers_for(&key);
        let (r1, r2) = (row(Some(1)), row(Some(2)));
        for r in [&r1, &r1, &r2] {
            answers.absorb(r);
        }
        assert_eq!(answers.rows.len(), 2);
        answers.absorb(&status(&key, &[&r1, &r2]));
        assert!(answers.answered.contains_key("a"), "{:?}", answers.rejected);
        // Anything after the signed answer is someone else's.
        answers.absorb(&row(Some(3)));
        assert_eq!(answers.rows.len(), 2);
        assert!(answers.rejected["a"].contains("after the host's signed answer"));
    }

    #[test]
    fn forged_statuses_and_rows_are_rejected() {
        let key = AgentKey::ephemeral([1; 32]);
        let forger = AgentKey::ephemeral([2; 32]);
        // A clean status for a frozen host, by someone without its key.
        let mut answers = answers_for(&key);
        answers.absorb(&status(&forger, &[]));
        assert!(answers.answered.is_empty());
        assert!(
            answers.rejected["a"].contains("does not verify"),
            "{:?}",
            answers.rejected
        );
        // A fake row slipped in before the host's own status.
        let mut answers = answers_with_fake_row(&key);
        answers.absorb(&status(&key, &[&row(Some(1))]));
        assert!(answers.answered.is_empty());
        assert!(
            answers.rejected["a"].contains("sent 1 row(s) but 2 arrived"),
            "{:?}",
            answers.rejected
        );
        // A host nobody pinned or saw.
        let mut answers = Answers::new("h", Identities::default());
        answers.absorb(&status(&key, &[]));
        assert!(answers.rejected["a"].contains("no pinned identity"));
        // Unnumbered rows cannot be part of a signed answer.
        let mut answers = answers_for(&key);
        answers.absorb(&row(None));
        answers.absorb(&status(&key, &[&row(None)]));
        assert!(answers.answered.is_empty());
    }

    #[test]
    fn every_host_gets_one_outcome() {
        let key = AgentKey::ephemeral([1; 32]);
        let mut answers = answers_for(&key);
        let r1 = row(Some(1));
        answers.absorb(&r1);
        answers.absorb(&status(&key, &[&r1]));
        let expected: BTreeSet<String> = ["a", "ghost-1", "ghost-2"].map(String::from).into();
        let outcomes = answers.outcomes(&expected, Some(Duration::from_secs(3)));
        let got: Vec<(&str, Outcome, u64, Option<&str>)> = outcomes
            .iter()
            .map(|o| (o.host_id.as_str(), o.outcome, o.rows, o.reason.as_deref()))
            .collect();
        let silent = Some("did not answer within 3s");
        assert_eq!(
            got,
            [
                ("a", Outcome::Answered, 1, None),
                ("ghost-1", Outcome::Silent, 0, silent),
                ("ghost-2", Outcome::Silent, 0, silent),
            ]
        );
        assert_eq!(
            answers.counts(3),
            Counts {
                answered: 1,
                targeted: 3,
                rows: 1,
                errors: 0
            }
        );
        // A row after the signed answer: the host is rejected, once.
        answers.absorb(&row(Some(2)));
        let outcomes = answers.outcomes(&expected, None);
        assert_eq!(outcomes[0].outcome, Outcome::Rejected);
        assert_eq!(outcomes[1].reason.as_deref(), Some("has not answered"));
        assert_eq!(answers.counts(3).errors, 1);
        let lines = progress::summary_lines(&progress::groups(&outcomes), Limits::default(), "");
        assert_eq!(
            lines,
            [
                // Small groups keep a line per host.
                "ghost-1: has not answered",
                "ghost-2: has not answered",
                "a: a row after the host's signed answer (not from this agent)",
            ]
        );
    }

    fn answers_with_fake_row(key: &AgentKey) -> Answers {
        let mut answers = answers_for(key);
        answers.absorb(&row(Some(1)));
        answers.absorb(&row(Some(2)));
        answers
    }
}
