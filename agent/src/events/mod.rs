//! Event tables: what the kernel reports as it happens, so what lives between
//! two polls is still seen. Each source feeds one table's buffer with
//! osquery's semantics: events are kept for `events_expiry` up to
//! `events_max`, a scheduled query reads only the events since its last run
//! (its [`Window`]), a hunt reads the whole buffer. A source the host cannot
//! provide is logged, shown inactive in `osquery_events`, counted in metrics,
//! and a query on its table fails saying why: never a silently empty table.
//!
//! - [`buffer`]: one table's events, numbered, expired, bounded.
//! - [`proc_connector`]: `process_events` from the kernel's process connector
//!   (netlink `cn_proc`): execs, forks and exits.
//! - [`exec_scan`]: what an exec'd process is, read from /proc at once.
//! - [`sock_destroy`]: `socket_events` from sock_diag's destroy notifications.
//! - [`file_patterns`]: osquery's `file_paths` patterns.
//! - [`file_watch`]: `file_events` from inotify on the configured paths.
//! - [`fanotify`]: the writes of `file_events` with the acting pid, where
//!   fanotify is permitted.
//! - [`netlink`]: the netlink framing the sources share.

pub mod buffer;
pub mod exec_scan;
pub mod fanotify;
pub mod file_patterns;
pub mod file_watch;
pub mod netlink;
pub mod proc_connector;
pub mod sock_destroy;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing::{info, warn};

use crate::config::EventsConfig;
use crate::error::AgentError;
use crate::tables::net::sockets::Socket;
use crate::tables::Row;
use buffer::Buffer;

/// How often a source's blocking read wakes to look at the stop flag.
pub(crate) const WAKE_EVERY: Duration = Duration::from_millis(500);

/// The event tables and which source feeds each.
pub const TABLES: [(&str, &str); 3] = [
    ("process_events", proc_connector::NAME),
    ("socket_events", sock_destroy::NAME),
    ("file_events", file_watch::NAME),
];

/// Whether `table` is an event table.
pub fn is_event_table(table: &str) -> bool {
    TABLES.iter().any(|(t, _)| *t == table)
}

/// A source's state, as `osquery_events` and the metrics show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not started: the agent runs no event sources (a one-off query, the
    /// fleet simulator) or is starting.
    Idle,
    Active,
    /// The host cannot provide it, or it stopped; the reason says which.
    Failed(String),
    /// Turned off in the configuration.
    Disabled(String),
}

/// One source: its state and what it counted.
#[derive(Debug)]
pub struct Source {
    pub name: &'static str,
    pub table: &'static str,
    state: Mutex<State>,
    /// Events the source read from the kernel.
    pub received: AtomicU64,
    /// Events the kernel could not hand over (the socket's buffer overflowed)
    /// or the source could not read; the buffer's own drops are apart.
    pub lost: AtomicU64,
}

impl Source {
    pub fn state(&self) -> State {
        lock(&self.state).clone()
    }
}

/// A scheduled query's view of the event tables: it reads the events after
/// the ones its last successful run read, and notes the last it read, which
/// become its starting point once the run's rows are safely away
/// ([`Events::commit`]). A failed run commits nothing, so no event is lost
/// to it.
#[derive(Debug)]
pub struct Window {
    query: String,
    read: Mutex<BTreeMap<&'static str, u64>>,
}

impl Window {
    pub fn new(query: &str) -> Arc<Self> {
        Arc::new(Self {
            query: query.to_string(),
            read: Mutex::new(BTreeMap::new()),
        })
    }

    /// Whether this run read an event table.
    pub fn read_any(&self) -> bool {
        !lock(&self.read).is_empty()
    }
}

/// What one table holds and has counted, for metrics and `osquery_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStats {
    pub table: &'static str,
    pub source: &'static str,
    pub state: State,
    pub received: u64,
    pub lost: u64,
    pub buffered: u64,
    pub dropped: u64,
    pub expired: u64,
}

/// The agent's event buffers and sources.
pub struct Events {
    config: EventsConfig,
    buffers: BTreeMap<&'static str, Mutex<Buffer>>,
    sources: BTreeMap<&'static str, Arc<Source>>,
    /// Per scheduled query, per table: the last eid its committed runs read.
    cursors: Mutex<HashMap<String, BTreeMap<&'static str, u64>>>,
    /// Connections exec scans saw, for naming the process when they end.
    owners: Mutex<sock_destroy::Owners>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Events {
    /// Empty buffers and idle sources; [`start`](Self::start) starts them.
    pub fn new(config: &EventsConfig) -> Arc<Self> {
        let expiry = config.events_expiry.as_secs();
        let buffers = TABLES
            .iter()
            .map(|(t, _)| (*t, Mutex::new(Buffer::new(expiry, config.events_max))))
            .collect();
        let sources = TABLES
            .iter()
            .map(|(table, name)| {
                let state = if config.enabled {
                    State::Idle
                } else {
                    State::Disabled("[events] enabled = false".into())
                };
                (
                    *name,
                    Arc::new(Source {
                        name,
                        table,
                        state: Mutex::new(state),
                        received: AtomicU64::new(0),
                        lost: AtomicU64::new(0),
                    }),
                )
            })
            .collect();
        Arc::new(Self {
            config: config.clone(),
            buffers,
            sources,
            cursors: Mutex::new(HashMap::new()),
            owners: Mutex::new(sock_destroy::Owners::default()),
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Starts every enabled source on its own thread. A source the host
    /// cannot provide is logged and marked failed; the others run.
    pub fn start(self: &Arc<Self>) {
        if !self.config.enabled {
            info!("event sources off ([events] enabled = false)");
            return;
        }
        let pc = proc_connector::start(self.clone());
        self.started(proc_connector::NAME, pc);
        let sd = sock_destroy::start(self.clone());
        self.started(sock_destroy::NAME, sd);
        if self.config.file_paths.is_empty() {
            self.set_state(
                file_watch::NAME,
                State::Disabled("no [events] file_paths configured".into()),
            );
        } else {
            let fw = file_watch::start(self.clone(), &self.config.file_paths);
            self.started(file_watch::NAME, fw);
        }
    }

    fn started(&self, source: &'static str, result: Result<(), String>) {
        match result {
            Ok(()) => {
                info!(source, "event source started");
                self.set_state(source, State::Active);
            }
            Err(reason) => {
                warn!(source, reason = %reason, "event source unavailable");
                self.set_state(source, State::Failed(reason));
            }
        }
    }

    /// Marks a source's state (sources call this when they stop or fail).
    pub fn set_state(&self, source: &'static str, state: State) {
        if let Some(s) = self.sources.get(source) {
            *lock(&s.state) = state;
        }
    }

    pub fn source(&self, name: &str) -> Option<&Arc<Source>> {
        self.sources.get(name)
    }

    /// Asks every source to stop; their threads end within [`WAKE_EVERY`].
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn config(&self) -> &EventsConfig {
        &self.config
    }

    /// Remembers that `owner` holds the connection `socket`.
    pub fn note_owner(&self, socket: &Socket, owner: sock_destroy::Owner) {
        lock(&self.owners).note(socket, owner);
    }

    /// Who was seen holding `socket`, forgotten now that it ended.
    pub fn take_owner(&self, socket: &Socket) -> Option<sock_destroy::Owner> {
        lock(&self.owners).take(socket)
    }

    /// Buffers one event of `table` received now; its `time` and `eid` are
    /// set here.
    pub fn push(&self, table: &'static str, row: Row) {
        self.push_at(table, sweep_proto::time::unix_now(), row);
    }

    pub fn push_at(&self, table: &'static str, time: u64, mut row: Row) {
        let Some(buffer) = self.buffers.get(table) else {
            return;
        };
        let mut buffer = lock(buffer);
        let eid = buffer.last_eid() + 1;
        row.set("time", time as i64).set("eid", eid_text(eid));
        buffer.push(time, row);
    }

    /// The events of `table` a query reads: all of them for a hunt, those
    /// after its last committed run for a scheduled query. Fails when the
    /// table's source is not running, saying why.
    pub fn scan(
        &self,
        table: &'static str,
        window: Option<&Window>,
        out: &mut Vec<Row>,
    ) -> Result<(), AgentError> {
        let source = TABLES
            .iter()
            .find(|(t, _)| *t == table)
            .and_then(|(_, s)| self.sources.get(s))
            .ok_or_else(|| AgentError::Table {
                table,
                reason: "not an event table".into(),
            })?;
        let unavailable = |why: String| AgentError::Table {
            table,
            reason: format!("no events: {why}"),
        };
        match source.state() {
            State::Active => {}
            State::Idle => {
                return Err(unavailable(
                    "event sources run only in the agent daemon (`sweep-agent run`); \
                     ask it with a hunt"
                        .into(),
                ))
            }
            State::Failed(why) => {
                return Err(unavailable(format!("source {} failed: {why}", source.name)))
            }
            State::Disabled(why) => {
                return Err(unavailable(format!("source {} is off: {why}", source.name)))
            }
        }
        let Some(buffer) = self.buffers.get(table) else {
            return Ok(());
        };
        let after = window.map_or(0, |w| {
            lock(&self.cursors)
                .get(&w.query)
                .and_then(|c| c.get(table))
                .copied()
                .unwrap_or(0)
        });
        let mut buffer = lock(buffer);
        buffer.expire(sweep_proto::time::unix_now());
        out.extend(buffer.since(after).map(|e| e.row.clone()));
        if let Some(w) = window {
            let last = buffer.last_eid();
            let mut read = lock(&w.read);
            let seen = read.entry(table).or_insert(after);
            *seen = (*seen).max(last);
        }
        Ok(())
    }

    /// The run that read through `window` is safely away: its next run
    /// starts after what it read.
    pub fn commit(&self, window: &Window) {
        let read = lock(&window.read);
        if read.is_empty() {
            return;
        }
        let mut cursors = lock(&self.cursors);
        let entry = cursors.entry(window.query.clone()).or_default();
        for (table, eid) in read.iter() {
            let c = entry.entry(table).or_insert(0);
            *c = (*c).max(*eid);
        }
    }

    /// Every table's counts.
    pub fn stats(&self) -> Vec<TableStats> {
        let now = sweep_proto::time::unix_now();
        TABLES
            .iter()
            .map(|(table, source)| {
                let s = &self.sources[source];
                let mut b = lock(&self.buffers[table]);
                b.expire(now);
                TableStats {
                    table,
                    source,
                    state: s.state(),
                    received: s.received.load(Ordering::Relaxed),
                    lost: s.lost.load(Ordering::Relaxed),
                    buffered: b.len() as u64,
                    dropped: b.dropped,
                    expired: b.expired,
                }
            })
            .collect()
    }
}

/// An eid as osquery writes it: ten digits, zero-padded.
pub fn eid_text(eid: u64) -> String {
    format!("{eid:010}")
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reading test rows' values as the assertions want them.
#[cfg(test)]
pub(crate) mod test_rows {
    use crate::tables::Row;

    pub fn text(r: &Row, column: &str) -> Option<String> {
        r.text(column).map(str::to_string)
    }

    pub fn int(r: &Row, column: &str) -> Option<i64> {
        r.int(column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sweep_proto::schema::process_events::TABLE;

    fn event(hub: &Events, pid: i64) {
        let mut r = Row::empty(TABLE.columns);
        r.set("pid", pid);
        hub.push("process_events", r);
    }

    fn pids(rows: &[Row]) -> Vec<i64> {
        rows.iter()
            .map(|r| match r.get("pid") {
                Some(rusqlite::types::Value::Integer(p)) => *p,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn active(config: EventsConfig) -> Arc<Events> {
        let hub = Events::new(&config);
        hub.set_state(proc_connector::NAME, State::Active);
        hub
    }

    #[test]
    fn a_scheduled_query_reads_what_came_since_its_last_committed_run() {
        let hub = active(EventsConfig::default());
        event(&hub, 1);
        event(&hub, 2);
        let read = |w: Option<&Window>| {
            let mut out = Vec::new();
            hub.scan("process_events", w, &mut out).unwrap();
            pids(&out)
        };
        let first = Window::new("q");
        assert_eq!(read(Some(&first)), [1, 2]);
        hub.commit(&first);
        event(&hub, 3);
        // A run whose rows did not get away commits nothing: the next run
        // reads its events again.
        let failed = Window::new("q");
        assert_eq!(read(Some(&failed)), [3]);
        let next = Window::new("q");
        assert_eq!(read(Some(&next)), [3]);
        hub.commit(&next);
        assert_eq!(read(Some(&Window::new("q"))), Vec::<i64>::new());
        // Another query has its own position; a hunt sees the whole buffer.
        assert_eq!(read(Some(&Window::new("other"))), [1, 2, 3]);
        assert_eq!(read(None), [1, 2, 3]);
    }

    #[test]
    fn a_source_that_is_not_running_fails_the_scan_with_its_reason() {
        let hub = Events::new(&EventsConfig::default());
        let mut out = Vec::new();
        let e = hub.scan("socket_events", None, &mut out).unwrap_err();
        assert!(e.to_string().contains("sweep-agent run"), "{e}");
        hub.set_state(
            sock_destroy::NAME,
            State::Failed("permission denied".into()),
        );
        let e = hub.scan("socket_events", None, &mut out).unwrap_err();
        assert!(e.to_string().contains("permission denied"), "{e}");
        let off = Events::new(&EventsConfig {
            enabled: false,
            ..EventsConfig::default()
        });
        let e = off.scan("process_events", None, &mut out).unwrap_err();
        assert!(e.to_string().contains("enabled = false"), "{e}");
    }

    #[test]
    fn events_over_events_max_are_dropped_and_counted() {
        let hub = active(EventsConfig {
            events_max: 10,
            ..EventsConfig::default()
        });
        for pid in 0..25 {
            event(&hub, pid);
        }
        let mut out = Vec::new();
        hub.scan("process_events", None, &mut out).unwrap();
        assert_eq!(pids(&out), (15..25).collect::<Vec<_>>());
        let s = &hub.stats()[0];
        assert_eq!((s.table, s.buffered, s.dropped), ("process_events", 10, 15));
        assert_eq!(
            out[0].get("eid"),
            Some(&rusqlite::types::Value::Text("0000000016".into()))
        );
    }
}
