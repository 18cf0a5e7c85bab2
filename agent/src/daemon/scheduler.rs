//! Scheduled work: single scheduled queries from `/sweep/schedule/` and
//! osquery-format packs from `/sweep/packs/`, run on their intervals.
//!
//! Snapshot queries log every row each run (`action = "snapshot"`);
//! differential ones log only what changed since the last run (`added`, and
//! `removed` unless turned off), with osquery's `epoch` and `counter`. A pack's
//! queries run only where every discovery query returns rows; discovery is
//! re-checked hourly, as osquery's pack refresh does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sweep_proto::schedule::runs_on_linux;
use sweep_proto::time::unix_now;
use sweep_proto::{Keyspace, Pack, ScheduledQuery, Targets};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::diff::DiffStore;
use super::records::RowMeta;
use super::watcher::{Change, Source};
use super::Shared;
use crate::engine::{value_to_string, QueryError, QueryOutput};
use crate::error::AgentError;
use crate::events::Window;
use crate::tables::schedule_stats::{RunCost, ScheduleStats};
use sweep_proto::identity::RowDigest;

/// How long a pack's discovery verdict holds.
const DISCOVERY_REFRESH: Duration = Duration::from_secs(3600);
/// The first run of a new query is spread over at most this much, so a fleet
/// does not run a new schedule in the same second.
const MAX_SPLAY: Duration = Duration::from_secs(60);

struct Entry {
    sql: String,
    interval: Duration,
    snapshot: bool,
    removed: bool,
    pack: Option<String>,
    next_run: Instant,
}

/// A verified command from etcd.
enum Command {
    Schedule(ScheduledQuery),
    Pack(Pack),
}

struct PackState {
    discovery: Vec<String>,
    /// The last verdict and when it was reached.
    verdict: Option<(bool, Instant)>,
}

pub struct Scheduler {
    /// Query name (the `name` rows carry) → what to run.
    entries: BTreeMap<String, Entry>,
    /// etcd key → the query names it defined, to undo on delete.
    by_key: BTreeMap<String, (Source, Vec<String>)>,
    packs: BTreeMap<String, PackState>,
    /// Queries stopped by a limit, and until when they are not run.
    denied: BTreeMap<String, Instant>,
    diffs: DiffStore,
    /// What osquery_schedule and osquery_packs report: kept in step with
    /// the maps above, and told of every run.
    stats: Arc<ScheduleStats>,
}

impl Scheduler {
    pub fn new(diffs: DiffStore, stats: Arc<ScheduleStats>) -> Self {
        // A new scheduler starts empty; the statistics of past runs stay.
        stats.clear_schedule();
        Self {
            entries: BTreeMap::new(),
            by_key: BTreeMap::new(),
            packs: BTreeMap::new(),
            denied: BTreeMap::new(),
            diffs,
            stats,
        }
    }

    /// When the next query is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.entries.values().map(|e| e.next_run).min()
    }

    /// Takes in a change to the schedule or the packs.
    pub fn apply(&mut self, shared: &Shared, source: Source, change: Change) {
        match change {
            Change::Reset => {
                let keys: Vec<String> = self
                    .by_key
                    .iter()
                    .filter(|(_, (s, _))| *s == source)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in keys {
                    self.remove_key(&key, false);
                }
            }
            Change::Delete { key } => self.remove_key(&key, true),
            Change::Put { key, value } => {
                // Verified before anything is replaced: a bad value put over
                // a good command leaves the good one running.
                let keys = shared.config.keyspace();
                let (kind, dir) = match source {
                    Source::Schedules => ("schedule", keys.schedules()),
                    Source::Packs => ("pack", keys.packs()),
                    Source::Hunts => return,
                };
                let Some(leaf) = Keyspace::leaf(&dir, &key) else {
                    return;
                };
                let command = match source {
                    Source::Schedules => shared
                        .verifier
                        .schedule(&key, leaf, &value)
                        .map(Command::Schedule),
                    _ => shared.verifier.pack(&key, leaf, &value).map(Command::Pack),
                };
                let command = match command {
                    Ok(c) => c,
                    Err(why) => {
                        shared
                            .metrics
                            .commands_rejected
                            .with_label_values(&[kind])
                            .inc();
                        warn!(kind, key = %key, error = %why, "command rejected");
                        return;
                    }
                };
                self.remove_key(&key, false);
                let added = match command {
                    Command::Schedule(q) => self.put_schedule(shared, q),
                    Command::Pack(p) => self.put_pack(shared, p),
                };
                if !added.is_empty() {
                    info!(key = %key, queries = ?added, "scheduled");
                    self.by_key.insert(key, (source, added));
                }
            }
        }
    }

    /// Forgets what `key` defined. On a delete, the differential state goes
    /// too; on a re-put or a reset it stays, so unchanged rows are not
    /// reported as added again.
    fn remove_key(&mut self, key: &str, deleted: bool) {
        if let Some((source, names)) = self.by_key.remove(key) {
            for name in &names {
                // A changed or removed query starts with a clean record.
                self.denied.remove(name);
                self.stats.unschedule(name, deleted);
                if let Some(e) = self.entries.remove(name) {
                    if let Some(pack) = e.pack {
                        self.packs.remove(&pack);
                        self.stats.unload_pack(&pack);
                    }
                }
                if deleted {
                    self.diffs.forget(name);
                }
            }
            if deleted {
                info!(key, ?source, "unscheduled");
            }
        }
    }

    /// Whether a command is for this host.
    fn accept(shared: &Shared, targets: &Targets, platform: Option<&str>) -> bool {
        targets.matches(&shared.host_id, &shared.config.labels) && runs_on_linux(platform)
    }

    fn put_schedule(&mut self, shared: &Shared, q: ScheduledQuery) -> Vec<String> {
        if !Self::accept(shared, &q.targets, q.platform.as_deref()) {
            return Vec::new();
        }
        // A schedule with discovery queries is gated like a pack of one.
        let gate = (!q.targets.discovery.is_empty()).then(|| {
            let key = format!("schedule:{}", q.name);
            self.packs.insert(
                key.clone(),
                PackState {
                    discovery: q.targets.discovery.clone(),
                    verdict: None,
                },
            );
            key
        });
        let entry = Entry {
            sql: q.sql,
            interval: interval(q.interval),
            snapshot: q.snapshot,
            removed: q.removed,
            pack: gate,
            next_run: first_run(&shared.host_id, &q.name, q.interval),
        };
        self.stats
            .schedule(&q.name, &entry.sql, entry.interval.as_secs(), None);
        self.entries.insert(q.name.clone(), entry);
        vec![q.name]
    }

    fn put_pack(&mut self, shared: &Shared, pack: Pack) -> Vec<String> {
        if !Self::accept(shared, &pack.targets, pack.platform.as_deref()) {
            return Vec::new();
        }
        let mut names = Vec::new();
        for (qname, q) in &pack.queries {
            if !runs_on_linux(q.platform.as_deref()) {
                continue;
            }
            let name = Pack::query_name(&pack.name, qname);
            let entry = Entry {
                sql: q.query.clone(),
                interval: interval(q.interval),
                snapshot: q.snapshot,
                removed: q.removed,
                pack: Some(pack.name.clone()),
                next_run: first_run(&shared.host_id, &name, q.interval),
            };
            self.stats.schedule(
                &name,
                &entry.sql,
                entry.interval.as_secs(),
                Some(&pack.name),
            );
            self.entries.insert(name.clone(), entry);
            names.push(name);
        }
        if !names.is_empty() {
            let discovery = !pack.discovery.is_empty();
            self.stats
                .load_pack(&pack.name, pack.platform.as_deref(), discovery);
        }
        self.packs.insert(
            pack.name.clone(),
            PackState {
                discovery: pack.discovery.clone(),
                verdict: None,
            },
        );
        names
    }

    /// Runs the query that is due first, if any is due.
    pub async fn run_due(&mut self, shared: &Shared) {
        let now = Instant::now();
        let Some(name) = self
            .entries
            .iter()
            .filter(|(_, e)| e.next_run <= now)
            .min_by_key(|(_, e)| e.next_run)
            .map(|(n, _)| n.clone())
        else {
            return;
        };
        let (sql, interval, snapshot, removed, pack) = {
            let e = &self.entries[&name];
            (
                e.sql.clone(),
                e.interval,
                e.snapshot,
                e.removed,
                e.pack.clone(),
            )
        };
        if let Some(e) = self.entries.get_mut(&name) {
            e.next_run = now + interval;
        }
        if let Some(until) = self.denied.get(&name) {
            if *until > now {
                debug!(query = %name, "deny-listed; not running");
                return;
            }
            self.denied.remove(&name);
            self.stats.set_denylisted(&name, false);
        }
        if let Some(pack) = pack {
            if !self.discovered(shared, &pack).await {
                debug!(query = %name, pack = %pack, "pack discovery found nothing; not running");
                return;
            }
        }
        if let Err(e) = self.run_one(shared, &name, &sql, snapshot, removed).await {
            warn!(query = %name, error = %e, "scheduled results could not be stored");
        }
    }

    /// Whether every discovery query of `pack` returns rows (cached).
    async fn discovered(&mut self, shared: &Shared, pack: &str) -> bool {
        let Some(state) = self.packs.get(pack) else {
            return false;
        };
        if let Some((verdict, at)) = state.verdict {
            if at.elapsed() < DISCOVERY_REFRESH {
                self.stats.pack_discovery(pack, true, verdict);
                return verdict;
            }
        }
        let verdict = match shared
            .queries
            .discovery_passes(&state.discovery.clone())
            .await
        {
            Ok(v) => v,
            Err(e) => {
                warn!(pack, error = %e, "discovery failed; not running");
                false
            }
        };
        if let Some(state) = self.packs.get_mut(pack) {
            state.verdict = Some((verdict, Instant::now()));
        }
        self.stats.pack_discovery(pack, false, verdict);
        verdict
    }

    async fn run_one(
        &mut self,
        shared: &Shared,
        name: &str,
        sql: &str,
        snapshot: bool,
        removed: bool,
    ) -> Result<(), AgentError> {
        let window = Window::new(name);
        let out = shared
            .queries
            .collect_scheduled("schedule", sql, window.clone())
            .await?;
        self.record_run(name, &out);
        if let Some(e) = &out.error {
            // A failed run says nothing about the rows: the differential state
            // is left as it was.
            if matches!(e, QueryError::Limit(_)) {
                // As osquery's watchdog does: a query that overran the agent's
                // limits once would do it again on every interval.
                let for_ = shared.config.limits.denylist_for;
                self.denied.insert(name.to_string(), Instant::now() + for_);
                self.stats.set_denylisted(name, true);
                shared.metrics.queries_denylisted.inc();
                warn!(query = name, error = %e, denylisted_for = ?for_, "scheduled query stopped by a limit; deny-listed");
            } else {
                warn!(query = name, error = %e, "scheduled query failed");
            }
            return Ok(());
        }
        let now = unix_now();
        let rows: Vec<_> = out.string_rows().collect();
        // Rows are numbered within the run and sealed after it, so a reader
        // can tell the run's rows from anyone else's.
        let mut seq = 0;
        let mut digest = RowDigest::new();
        let mut row = |action, epoch, counter, columns| {
            seq += 1;
            let meta = RowMeta {
                name,
                action,
                hunt_id: None,
                seq: Some(seq),
                partition: None,
                epoch,
                counter,
                now,
            };
            let record = shared.records.row(meta, columns);
            digest.add(record.value.as_bytes());
            record
        };
        // A query over an event table reads only new events: each run's rows
        // are new, not a state to compare with the last (osquery logs them
        // all as added).
        let evented = window.read_any();
        let (mut records, diff) = if snapshot {
            let records: Vec<_> = rows.into_iter().map(|r| row("snapshot", 0, 0, r)).collect();
            (records, None)
        } else if evented {
            let records: Vec<_> = rows.into_iter().map(|r| row("added", 0, 0, r)).collect();
            (records, None)
        } else {
            let diff = self.diffs.diff(name, sql, rows)?;
            let mut records: Vec<_> = diff
                .added
                .iter()
                .cloned()
                .map(|r| row("added", diff.epoch, diff.counter, r))
                .collect();
            if removed {
                records.extend(
                    diff.removed
                        .iter()
                        .cloned()
                        .map(|r| row("removed", diff.epoch, diff.counter, r)),
                );
            }
            (records, Some(diff))
        };
        let n = records.len() as u64;
        if n > 0 {
            let (epoch, counter) = diff.as_ref().map_or((0, 0), |d| (d.epoch, d.counter));
            records.push(shared.records.run_seal(name, now, epoch, counter, &digest));
        }
        debug!(query = name, rows = n, "scheduled query ran");
        shared.sink.send(&records)?;
        // The events are safely away (sent or spooled): the next run starts
        // after them.
        if let Some(events) = &shared.events {
            events.commit(&window);
        }
        // Only now that its rows are on disk does this run become the state
        // the next one is compared with.
        if let Some(mut diff) = diff {
            self.diffs.commit(name, &mut diff)?;
        }
        shared
            .counters
            .rows_sent
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Adds one run (failed ones too, as osquery counts them) to the
    /// statistics osquery_schedule reports.
    fn record_run(&self, name: &str, out: &QueryOutput) {
        let output_size = out
            .rows
            .iter()
            .flat_map(|row| out.columns.iter().zip(row))
            .map(|(c, v)| (c.len() + value_to_string(v).len()) as u64)
            .sum();
        let cost = RunCost {
            wall: out.elapsed,
            user: out.user_time,
            system: out.system_time,
            memory_growth: out.memory_growth,
            output_size,
        };
        self.stats.record_run(name, &cost, unix_now());
    }
}

/// An interval from a command, within osquery's bounds (1 s to a week): a
/// signed command with an absurd interval must not overflow the clock.
fn interval(secs: u64) -> Duration {
    Duration::from_secs(secs.clamp(1, MAX_INTERVAL))
}

/// The longest interval osquery allows, a week.
const MAX_INTERVAL: u64 = 604_800;

/// A stable offset within the first interval (at most [`MAX_SPLAY`]) for
/// this host and query.
fn first_run(host_id: &str, name: &str, interval: u64) -> Instant {
    let window = self::interval(interval).min(MAX_SPLAY);
    let digest = Sha256::digest(format!("{host_id}/{name}").as_bytes());
    let n = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
    let splay = Duration::from_millis(n % (window.as_millis() as u64).max(1));
    Instant::now() + splay
}

#[cfg(test)]
mod tests {
    //! The scheduler keeps `osquery_schedule` and `osquery_packs` in step.

    use rusqlite::types::Value;
    use sweep_proto::signing::{Envelope, Kind};
    use sweep_proto::PackQuery;

    use super::*;
    use crate::config::Config;
    use crate::daemon::{agent, Process};

    fn shared(dir: &std::path::Path) -> Shared {
        let config = Config::parse(&format!(
            "host_id = \"h1\"\nstate_dir = \"{}\"\n[kafka]\nbrokers = \"127.0.0.1:1\"\n\
             [metrics]\nlisten = \"\"\n[trust]\nallow_unsigned = true\n",
            dir.display()
        ))
        .unwrap();
        let process = Process::new(&config, "h1", 1).unwrap();
        agent(config, 1, &process).unwrap()
    }

    async fn sql(shared: &Shared, sql: &str) -> Vec<Vec<Value>> {
        let out = shared.queries.collect("test", sql).await.unwrap();
        assert!(out.error.is_none(), "{sql}: {:?}", out.error);
        out.rows
    }

    /// Runs every entry now, as if its time had come.
    async fn run_all(scheduler: &mut Scheduler, shared: &Shared) {
        let names: Vec<String> = scheduler.entries.keys().cloned().collect();
        for name in names {
            scheduler.entries.get_mut(&name).unwrap().next_run = Instant::now();
            scheduler.run_due(shared).await;
        }
    }

    #[tokio::test]
    async fn runs_show_in_osquery_schedule_and_osquery_packs() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path());
        let diffs = DiffStore::open(&dir.path().join("differential")).unwrap();
        let mut scheduler = Scheduler::new(diffs, shared.schedule.clone());
        let keys = shared.config.keyspace();
        let q = ScheduledQuery {
            name: "ticks".into(),
            sql: "select 1 as one, 'abc' as two".into(),
            interval: 5,
            snapshot: true,
            removed: true,
            targets: Targets::all(),
            platform: None,
            description: String::new(),
            issuer: "test".into(),
            issued_at: 0,
            version: 1,
        };
        let put = |key: String, kind: Kind, body: String| Change::Put {
            key,
            value: Envelope::unsigned(kind, body).to_json().into_bytes(),
        };
        let body = serde_json::to_string(&q).unwrap();
        scheduler.apply(
            &shared,
            Source::Schedules,
            put(keys.schedule("ticks"), Kind::Schedule, body),
        );
        let pack = Pack {
            name: "gated".into(),
            discovery: vec!["select 1 where 0".into()],
            platform: Some("linux".into()),
            targets: Targets::all(),
            queries: [(
                "procs".to_string(),
                PackQuery {
                    query: "select 2".into(),
                    interval: 3600,
                    snapshot: true,
                    removed: true,
                    platform: None,
                    description: String::new(),
                },
            )]
            .into_iter()
            .collect(),
            issuer: "test".into(),
            issued_at: 0,
            version: 1,
        };
        let body = serde_json::to_string(&pack).unwrap();
        scheduler.apply(
            &shared,
            Source::Packs,
            put(keys.pack("gated"), Kind::Pack, body),
        );

        let t = |s: &str| Value::Text(s.into());
        let i = Value::Integer;
        let schedule = "select name, query, interval, executions, output_size, denylisted \
                        from osquery_schedule order by name";
        assert_eq!(
            sql(&shared, schedule).await,
            vec![
                vec![
                    t("pack_gated_procs"),
                    t("select 2"),
                    i(3600),
                    i(0),
                    i(0),
                    i(0)
                ],
                vec![
                    t("ticks"),
                    t("select 1 as one, 'abc' as two"),
                    i(5),
                    i(0),
                    i(0),
                    i(0)
                ],
            ]
        );
        let packs = "select name, platform, discovery_executions, discovery_cache_hits, active \
                     from osquery_packs";
        assert_eq!(
            sql(&shared, packs).await,
            vec![vec![t("gated"), t("linux"), i(0), i(0), i(0)]]
        );

        run_all(&mut scheduler, &shared).await;
        run_all(&mut scheduler, &shared).await;
        // ticks ran twice: "one" + "1" + "two" + "abc" = 10 bytes a run. The
        // pack's discovery found nothing (once run, once cached): its query
        // never ran.
        assert_eq!(
            sql(&shared, schedule).await,
            vec![
                vec![
                    t("pack_gated_procs"),
                    t("select 2"),
                    i(3600),
                    i(0),
                    i(0),
                    i(0)
                ],
                vec![
                    t("ticks"),
                    t("select 1 as one, 'abc' as two"),
                    i(5),
                    i(2),
                    i(20),
                    i(0)
                ],
            ]
        );
        assert_eq!(
            sql(&shared, packs).await,
            vec![vec![t("gated"), t("linux"), i(1), i(1), i(0)]]
        );
        let rows = sql(
            &shared,
            "select last_executed, wall_time_ms >= last_wall_time_ms from osquery_schedule \
             where name = 'ticks'",
        )
        .await;
        let Value::Integer(last) = rows[0][0] else {
            panic!("{rows:?}")
        };
        assert!(last >= 1_700_000_000 && last <= unix_now() as i64);
        assert_eq!(rows[0][1], i(1));

        // osquery's monitoring pack query, unchanged.
        let monitoring = crate::tables::testing::pack_query("osquery-monitoring", "schedule");
        assert_eq!(sql(&shared, &monitoring).await.len(), 2);

        // Deleting the pack unloads it and its query.
        scheduler.apply(
            &shared,
            Source::Packs,
            Change::Delete {
                key: keys.pack("gated"),
            },
        );
        assert!(sql(&shared, packs).await.is_empty());
        assert_eq!(sql(&shared, schedule).await.len(), 1);
    }
}
