//! Issuing a hunt and following it, for any front-end: `sweep hunt` on a
//! terminal, the web console.
//!
//! [`start`] guards the SQL, reads which live agents the targets match (and
//! refuses at once, writing nothing, when there is no host to wait for),
//! picks the partition of `sweep.hunts` the answers will come on, takes its
//! end, and writes the signed hunt to etcd on a lease that ends at its
//! expiry. [`HuntRun::next`] then yields what happens as it happens: rows,
//! hosts' checked answers, counts, and at the end a [`Finished`] with every
//! host's outcome. [`Answers`] checks each answer against the host's pinned
//! identity; `sweep results` uses it over the answers on record.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use rdkafka::Offset;
use sweep_proto::identity::{Forgery, RowDigest};
use sweep_proto::record::StatusBody;
use sweep_proto::signing::{Envelope, Kind, Signer};
use sweep_proto::text::printable;
use sweep_proto::time::unix_now;
use sweep_proto::{guard, topics, Hunt, HuntStatus, Keyspace, ResultsRecord, Store, Targets};
use tracing::warn;

use crate::cli::ExpectArgs;
use crate::config::Settings;
use crate::identities::Identities;
use crate::kafka::TopicReader;
use crate::progress::{Counts, HostOutcome, Outcome};
use crate::{fleet, operator, render, ControllerError};

/// How often the set of live agents is re-read while waiting, at the most:
/// agents that come online during the hunt run it too, and are waited for.
/// A large fleet is read less often (see [`refresh_after`]).
const FLEET_REFRESH: Duration = Duration::from_secs(1);

/// How often [`HuntEvent::Counts`] comes: as often as a progress bar redraws.
const COUNTS_EVERY: Duration = Duration::from_millis(100);

/// The longest wait for a record before the loop looks at the time again.
const POLL: Duration = Duration::from_millis(200);

/// The pause before the fleet is read again: at least [`FLEET_REFRESH`],
/// and ten times what the last read took, so reading 10,000 heartbeats
/// never takes more than a tenth of the hunt's time from its answers.
fn refresh_after(read_took: Duration) -> Duration {
    FLEET_REFRESH.max(read_took * 10)
}

/// A hunt to issue.
#[derive(Debug, Clone)]
pub struct HuntRequest {
    /// The SQL every targeted host runs.
    pub sql: String,
    pub targets: Targets,
    /// Hosts to wait for besides the live ones.
    pub expect: ExpectArgs,
    /// How long to wait for answers.
    pub timeout: Duration,
    /// How long the hunt stays live for agents that come online later.
    pub expiry: Duration,
    /// Who issues it (`user@host` on a terminal, the signed-in user in the
    /// console); covered by the signature.
    pub issuer: String,
}

/// What happened next in a running hunt.
#[derive(Debug)]
pub enum HuntEvent {
    /// A row came from a host. It counts once the host's signed answer
    /// verifies over it; [`Finished::rows`] has only rows that did.
    Row {
        host: String,
        columns: BTreeMap<String, String>,
    },
    /// A host's answer came and was checked: answered (with its row count),
    /// failed or skipped with its reason, or rejected and why.
    Host(HostOutcome),
    /// Where the hunt stands; comes every [`COUNTS_EVERY`] or so.
    Counts(Counts),
    /// Every expected host answered, or the time is up. The last event.
    Done(Finished),
}

/// A hunt's end: its rows and every host's outcome.
#[derive(Debug)]
pub struct Finished {
    pub hunt_id: String,
    /// The hunt's columns, in the order the agents' SQL gave them.
    pub columns: Vec<String>,
    /// Rows of hosts whose answer verified, by host id.
    pub rows: Vec<(String, BTreeMap<String, String>)>,
    /// Every host waited for or heard from, by host id.
    pub outcomes: Vec<HostOutcome>,
    pub counts: Counts,
    /// Hosts whose signed answer verified.
    pub answered: usize,
    /// Records read, this hunt's or not.
    pub records_read: u64,
    pub elapsed: Duration,
    /// How long the hunt waited (None: `sweep results`, a look at the record).
    pub waited: Option<Duration>,
}

impl Finished {
    /// Hosts that did not answer.
    pub fn silent(&self) -> impl Iterator<Item = &str> {
        self.outcomes
            .iter()
            .filter(|o| o.outcome == Outcome::Silent)
            .map(|o| o.host_id.as_str())
    }
}

/// Refuses a hunt the guard refuses, or one with a discovery query it
/// refuses, before anything is opened or sent: [`ControllerError::Refused`].
pub fn check(request: &HuntRequest) -> Result<(), ControllerError> {
    guard::check(&request.sql).map_err(|e| ControllerError::Refused(e.to_string()))?;
    for sql in &request.targets.discovery {
        if let Err(e) = guard::check(sql) {
            return Err(ControllerError::Refused(format!(
                "discovery query {sql:?}: {e}"
            )));
        }
    }
    Ok(())
}

/// Issues a hunt: checks it, finds the hosts to wait for, and writes it,
/// signed with the configured key. Fails with
/// [`ControllerError::NoTargets`], writing nothing, when no live agent
/// matches the targets and none is expected.
pub async fn start(settings: &Settings, request: HuntRequest) -> Result<HuntRun, ControllerError> {
    issue(settings, request)
        .await
        .map_err(|e| e.explained(settings))
}

async fn issue(settings: &Settings, request: HuntRequest) -> Result<HuntRun, ControllerError> {
    check(&request)?;
    // Load the key before anything is read or written: a bad key path fails
    // early.
    let signer = operator::signer(settings, "hunt")?;
    let keys = settings.keyspace();
    let store = settings.store().await?;
    let targets = request.targets;
    let now = unix_now();

    // Whom to wait for, before the hunt exists: with nobody, it is not sent.
    let read = Instant::now();
    let all = fleet::live_agents(&store, &keys).await?;
    let refresh_every = refresh_after(read.elapsed());
    let live_count = all.len();
    let live: Vec<_> = all
        .into_iter()
        .filter(|a| targets.matches(&a.host_id, &a.labels))
        .collect();
    let mut identities = Identities::load(&store, &keys, signer.as_ref()).await?;
    identities
        .observe(&store, &keys, signer.as_ref(), &live)
        .await?;
    let mut expected: BTreeSet<String> = live.into_iter().map(|a| a.host_id).collect();
    expected.extend(request.expect.hosts(&identities, &targets, now)?);
    if expected.is_empty() {
        return Err(ControllerError::NoTargets {
            targets: render::targets(&targets),
            live: live_count,
        });
    }

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

    let expiry = request.expiry.as_secs().max(1);
    let hunt = Hunt {
        id,
        sql: request.sql,
        targets: targets.clone(),
        issued_at: now,
        expires_at: now + expiry,
        issuer: request.issuer,
        partition: Some(partition),
    };
    let stored = operator::seal(signer.as_ref(), Kind::Hunt, hunt.to_json());
    store
        .put_expiring(
            &keys.hunt(&hunt.id),
            stored.to_json().as_bytes(),
            Duration::from_secs(expiry),
        )
        .await?;
    remove_expired_hunts(&store, &keys, now).await;
    let started = Instant::now();
    Ok(HuntRun {
        answers: Answers::new(&hunt.id, identities),
        id: hunt.id,
        partition,
        store,
        keys,
        targets,
        signer,
        reader,
        expected,
        started,
        deadline: started + request.timeout,
        timeout: request.timeout,
        refresh_every,
        last_refresh: Instant::now(),
        last_counts: None,
        pending: VecDeque::new(),
        done: false,
    })
}

/// Deletes the hunts whose time is up (on ZooKeeper; etcd's leases remove
/// them). Agents ignore an expired hunt either way: a failure here costs
/// nothing but a stale key.
async fn remove_expired_hunts(store: &Store, keys: &Keyspace, now: u64) {
    let expired = |value: &[u8]| {
        Envelope::from_json(value)
            .ok()
            .and_then(|env| Hunt::from_json(env.body.as_bytes()).ok())
            .is_some_and(|h| h.expires_at < now)
    };
    if let Err(e) = store.remove_expired(&keys.hunts(), expired).await {
        warn!(error = %e, "could not remove the expired hunts");
    }
}

/// A hunt that was sent, and the answers coming back.
pub struct HuntRun {
    id: String,
    partition: i32,
    store: Store,
    keys: Keyspace,
    targets: Targets,
    signer: Option<Signer>,
    reader: TopicReader,
    answers: Answers,
    /// Hosts waited for: live targeted agents (re-read while waiting),
    /// expected ones, and any that answered.
    expected: BTreeSet<String>,
    started: Instant,
    deadline: Instant,
    timeout: Duration,
    refresh_every: Duration,
    last_refresh: Instant,
    last_counts: Option<Instant>,
    pending: VecDeque<HuntEvent>,
    done: bool,
}

impl HuntRun {
    /// The hunt's id, as `sweep results` takes it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The partition of `sweep.hunts` its answers come on.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Time since the hunt was written.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Where the hunt stands now.
    pub fn counts(&self) -> Counts {
        self.answers.counts(self.expected.len())
    }

    /// What happened next; None after [`HuntEvent::Done`]. An error (etcd or
    /// the broker lost mid-hunt) ends the run.
    pub async fn next(&mut self) -> Result<Option<HuntEvent>, ControllerError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            if self.done {
                return Ok(None);
            }
            if self.last_counts.is_none_or(|t| t.elapsed() >= COUNTS_EVERY) {
                self.last_counts = Some(Instant::now());
                return Ok(Some(HuntEvent::Counts(self.counts())));
            }
            // Every host that answered is in `expected` (an answer adds its
            // host), so counting is enough: no walk over 10,000 hosts per
            // record.
            let complete = self.answers.answered.len() >= self.expected.len();
            let now = Instant::now();
            if complete || now >= self.deadline {
                self.done = true;
                let finished =
                    self.answers
                        .finish(&self.expected, Some(self.timeout), self.started.elapsed());
                return Ok(Some(HuntEvent::Done(finished)));
            }
            if self.last_refresh.elapsed() >= self.refresh_every {
                self.refresh().await?;
            }
            let wait = (self.deadline - now).min(POLL);
            let Some(rec) = self.reader.next(wait).await? else {
                continue;
            };
            match self.answers.absorb(&rec.payload) {
                None => {}
                Some(Absorbed::Row) => {
                    if let Some((host, columns)) = self.answers.rows.last() {
                        self.pending.push_back(HuntEvent::Row {
                            host: host.clone(),
                            columns: columns.clone(),
                        });
                    }
                }
                Some(Absorbed::Status(host) | Absorbed::Rejected(host)) => {
                    let outcome = self.answers.outcome_of(&host);
                    self.expected.insert(host);
                    self.pending.push_back(HuntEvent::Host(outcome));
                }
            }
        }
    }

    /// Waits for agents that came online since the last read too. Only
    /// grows the set: an agent that died mid-hunt is still reported as not
    /// having answered.
    async fn refresh(&mut self) -> Result<(), ControllerError> {
        let read = Instant::now();
        let live = fleet::targeted(&self.store, &self.keys, &self.targets).await?;
        self.refresh_every = refresh_after(read.elapsed());
        self.answers
            .identities
            .observe(&self.store, &self.keys, self.signer.as_ref(), &live)
            .await?;
        self.expected.extend(live.into_iter().map(|a| a.host_id));
        self.last_refresh = Instant::now();
        Ok(())
    }
}

/// What one record told [`Answers`].
#[derive(Debug, PartialEq, Eq)]
pub enum Absorbed {
    /// A row was taken: the last of [`Answers::rows`].
    Row,
    /// A host's status came, verified or rejected.
    Status(String),
    /// A row after the host's signed answer: the host is rejected.
    Rejected(String),
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

    /// Takes one record off `sweep.hunts`; says what it was when it was
    /// this hunt's and changed something.
    pub fn absorb(&mut self, payload: &[u8]) -> Option<Absorbed> {
        self.records_read += 1;
        match ResultsRecord::from_json(payload) {
            Ok(r) if r.hunt_id() == Some(self.hunt_id.as_str()) => match r {
                ResultsRecord::Row(row) => {
                    let host = row.host_identifier;
                    if self.answered.contains_key(&host) {
                        // The host's signed answer is complete: anything
                        // after it is someone else's.
                        if self.rejected.contains_key(&host) {
                            return None;
                        }
                        self.rejected.insert(
                            host.clone(),
                            "a row after the host's signed answer (not from this agent)".into(),
                        );
                        return Some(Absorbed::Rejected(host));
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
                    Some(Absorbed::Row)
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
                    Some(Absorbed::Status(host))
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

    /// One host's outcome so far, its rows counted only when its answer
    /// verified (a host that has not answered is silent).
    pub fn outcome_of(&self, host: &str) -> HostOutcome {
        let rows = if self.answered.contains_key(host) {
            self.received.get(host).map_or(0, |r| r.arrived)
        } else {
            0
        };
        self.outcome_with(host, rows, || "has not answered".into())
    }

    fn outcome_with(&self, host: &str, rows: u64, silence: impl Fn() -> String) -> HostOutcome {
        // A rejection outweighs an answer: a row after the signed answer
        // means someone else wrote in the host's name.
        let (outcome, reason) = match (self.rejected.get(host), self.answered.get(host)) {
            (Some(why), _) => (Outcome::Rejected, Some(why.clone())),
            (None, Some(s)) => match (&s.error, &s.skipped) {
                (Some(e), _) => (Outcome::Failed, Some(e.clone())),
                (None, Some(why)) => (Outcome::Skipped, Some(why.clone())),
                (None, None) => (Outcome::Answered, None),
            },
            (None, None) => (Outcome::Silent, Some(silence())),
        };
        HostOutcome {
            host_id: host.to_string(),
            outcome,
            rows,
            reason,
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
                let rows = rows_of.get(host.as_str()).copied().unwrap_or(0);
                self.outcome_with(host, rows, || silence.clone())
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

    /// The hunt's end: the rows of hosts whose answer verified (a host's
    /// rows only count once its status arrived: rows without one would be
    /// a partial answer), and every host's outcome. Takes the rows.
    pub fn finish(
        &mut self,
        expected: &BTreeSet<String>,
        waited: Option<Duration>,
        elapsed: Duration,
    ) -> Finished {
        let counts = self.counts(expected.len());
        let answered = &self.answered;
        let mut rows = std::mem::take(&mut self.rows);
        rows.retain(|(host, _)| answered.contains_key(host));
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        self.rows = rows;
        if self.columns.is_empty() {
            // No status named the columns (none answered yet): the rows' own.
            let mut seen = BTreeSet::new();
            for (_, r) in &self.rows {
                for c in r.keys() {
                    if seen.insert(c.clone()) {
                        self.columns.push(c.clone());
                    }
                }
            }
        }
        // A host's rows arrive before its status (one partition per host),
        // and the status is signed over their digest: rows lost on the way
        // (refused by the broker, quarantined on the agent), added or
        // altered by anyone else show as a rejected answer.
        let outcomes = self.outcomes(expected, waited);
        Finished {
            hunt_id: self.hunt_id.clone(),
            columns: self.columns.clone(),
            rows: std::mem::take(&mut self.rows),
            outcomes,
            counts,
            answered: self.answered.len(),
            records_read: self.records_read,
            elapsed,
            waited,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::progress::{self, Limits};
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
        let said: Vec<_> = [&r1, &r1, &r2].map(|r| answers.absorb(r)).into();
        assert_eq!(said, [Some(Absorbed::Row), None, Some(Absorbed::Row)]);
        assert_eq!(answers.rows.len(), 2);
        assert_eq!(
            answers.absorb(&status(&key, &[&r1, &r2])),
            Some(Absorbed::Status("a".into()))
        );
        assert!(answers.answered.contains_key("a"), "{:?}", answers.rejected);
        let o = answers.outcome_of("a");
        assert_eq!((o.outcome, o.rows), (Outcome::Answered, 2));
        // Anything after the signed answer is someone else's; said once.
        assert_eq!(
            answers.absorb(&row(Some(3))),
            Some(Absorbed::Rejected("a".into()))
        );
        assert_eq!(answers.absorb(&row(Some(4))), None);
        assert_eq!(answers.rows.len(), 2);
        assert!(answers.rejected["a"].contains("after the host's signed answer"));
        assert_eq!(answers.outcome_of("a").outcome, Outcome::Rejected);
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
        let finished = answers.finish(&expected, Some(Duration::from_secs(3)), Duration::ZERO);
        assert_eq!(finished.columns, ["x"]);
        assert_eq!(finished.rows.len(), 1);
        assert_eq!(
            finished.silent().collect::<Vec<_>>(),
            ["ghost-1", "ghost-2"]
        );
    }

    #[test]
    fn rows_of_a_host_without_a_verified_answer_are_left_out() {
        let key = AgentKey::ephemeral([1; 32]);
        let mut answers = answers_with_fake_row(&key);
        let expected: BTreeSet<String> = ["a".to_string()].into();
        let finished = answers.finish(&expected, None, Duration::ZERO);
        assert!(finished.rows.is_empty());
        assert_eq!(finished.silent().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn the_guard_refuses_before_anything_is_sent() {
        let request = |sql: &str, discovery: &[&str]| HuntRequest {
            sql: sql.into(),
            targets: Targets {
                discovery: discovery.iter().map(|d| d.to_string()).collect(),
                ..Targets::all()
            },
            expect: ExpectArgs::default(),
            timeout: Duration::from_secs(1),
            expiry: Duration::from_secs(1),
            issuer: "me@here".into(),
        };
        assert!(check(&request("SELECT 1", &["SELECT 1"])).is_ok());
        assert!(matches!(
            check(&request("DELETE FROM users", &[])),
            Err(ControllerError::Refused(_))
        ));
        let Err(ControllerError::Refused(why)) = check(&request("SELECT 1", &["DROP TABLE x"]))
        else {
            panic!("a refused discovery query")
        };
        assert!(why.starts_with("discovery query"), "{why}");
    }

    /// A console runs hunts on its own tasks: a run and its futures must
    /// move between threads (checked by compiling this).
    #[allow(dead_code)]
    fn sendable(settings: &'static Settings, run: &'static mut HuntRun, request: HuntRequest) {
        fn send<T: Send>(_: T) {}
        send(start(settings, request));
        send(run.next());
    }

    fn answers_with_fake_row(key: &AgentKey) -> Answers {
        let mut answers = answers_for(key);
        answers.absorb(&row(Some(1)));
        answers.absorb(&row(Some(2)));
        answers
    }
}
