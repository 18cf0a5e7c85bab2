//! The query engine: guard, then run one SQL text on a fresh SQLite connection
//! whose only tables are ours, under an authorizer and limits.
//!
//! A connection per query is cheap (an in-memory database and a few module
//! registrations) and means no query can leave state behind for the next.
//! Rows are handed to the caller as SQLite produces them
//! ([`Engine::run_each`]), so a large answer is never held whole; memory is
//! limited per query ([`heap`]), never by what earlier queries left behind.

pub mod heap;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use sweep_proto::guard::{self, Watch};
use sweep_proto::ProtoError;

use crate::events::Window;
use crate::tables::schedule_stats::ThreadUsage;
use crate::tables::vtab::{self, ScanShared};
use crate::tables::{Budget, Registry};

/// Limits every query runs under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Wall time from start to last row, e.g. "30s".
    #[serde(with = "sweep_proto::settings::humantime_serde_compat")]
    pub wall_time: Duration,
    /// Rows a query may return.
    pub max_rows: u64,
    /// Bytes of result values a query may return.
    pub max_bytes: u64,
    /// The longest a single value may be. A longer one (a megabyte command
    /// line, say) is cut to this and ends in a visible marker, `…[N bytes
    /// cut]`, so the row is still answered and still fits one Kafka record.
    /// 0 turns the cut off.
    pub max_value_bytes: u64,
    /// Memory one query may use: SQLite's heap for it (sorts, temporary
    /// b-trees, strings it builds) and the agent's growth in resident memory
    /// while it runs (rows the tables generate). Past it the query is stopped
    /// with the limit named; what earlier queries used never counts. 0 turns
    /// the check off. osquery's watchdog default is 200 MB.
    pub max_memory_bytes: u64,
    /// How long a scheduled query stopped by a limit is deny-listed (not run)
    /// on this agent, e.g. "1h". Editing the query lifts it.
    #[serde(with = "sweep_proto::settings::humantime_serde_compat")]
    pub denylist_for: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            wall_time: Duration::from_secs(30),
            max_rows: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_value_bytes: 64 * 1024,
            // osquery's watchdog default.
            max_memory_bytes: 200 * 1024 * 1024,
            denylist_for: Duration::from_secs(3600),
        }
    }
}

/// Why a query did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// The guard refused it; nothing ran.
    Refused(String),
    /// SQLite (or a table) failed it.
    Sql(String),
    /// A limit cut it short; the rows up to then are kept.
    Limit(String),
    /// The rows could not be handed on (the spool failed).
    Output(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(why) => write!(f, "query refused: {why}"),
            Self::Sql(why) => write!(f, "query failed: {why}"),
            Self::Limit(why) => write!(f, "query stopped: {why}"),
            Self::Output(why) => write!(f, "query results lost: {why}"),
        }
    }
}

/// A query's result: the rows it produced, and the error that ended it early.
#[derive(Debug, Clone, Default)]
pub struct QueryOutput {
    pub columns: Vec<String>,
    /// The rows, when the caller asked for them collected ([`Engine::run`]).
    pub rows: Vec<Vec<Value>>,
    /// Rows produced, whether collected or handed on.
    pub row_count: u64,
    /// Values cut to [`Limits::max_value_bytes`].
    pub truncated_values: u64,
    pub error: Option<QueryError>,
    pub elapsed: Duration,
    /// CPU time of the thread that ran the query, in user and kernel mode
    /// (clock-tick resolution), and the growth of the agent's resident
    /// memory while it ran, its rows still held: what osquery_schedule
    /// reports of scheduled runs.
    pub user_time: Duration,
    pub system_time: Duration,
    pub memory_growth: u64,
    /// Rows generated per table before SQLite filtered them.
    pub generated: BTreeMap<&'static str, u64>,
    /// Scans per table (see [`ScanShared::scans`]).
    pub scans: BTreeMap<&'static str, u64>,
    /// OS sources the tables read, by kind (see [`Budget::note_read`]).
    pub reads: BTreeMap<&'static str, u64>,
}

impl QueryOutput {
    fn failed(error: QueryError, started: Instant) -> Self {
        Self {
            error: Some(error),
            elapsed: started.elapsed(),
            ..Self::default()
        }
    }

    /// Rows as `column -> text` maps, NULL as "", the way osquery logs them.
    pub fn string_rows(&self) -> impl Iterator<Item = BTreeMap<String, String>> + '_ {
        self.rows.iter().map(|row| {
            self.columns
                .iter()
                .zip(row)
                .map(|(c, v)| (c.clone(), value_to_string(v)))
                .collect()
        })
    }
}

/// A value as osquery prints it.
pub fn value_to_string(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(t) => t.clone(),
        Value::Blob(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn value_bytes(v: &Value) -> u64 {
    match v {
        Value::Null => 1,
        Value::Integer(_) | Value::Real(_) => 8,
        Value::Text(t) => t.len() as u64,
        Value::Blob(b) => b.len() as u64,
    }
}

/// Cuts `t` to at most `keep` bytes (at a character boundary) and appends a
/// marker saying how many bytes went.
pub fn cut_text(t: &mut String, keep: usize) {
    let mut end = keep.min(t.len());
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    let cut = t.len() - end;
    t.truncate(end);
    t.push_str(&format!("…[{cut} bytes cut]"));
}

/// Cuts a text or blob longer than `cap` bytes to `cap` (at a character
/// boundary) and appends a marker saying how much went. True when cut.
pub fn cap_value(v: &mut Value, cap: u64) -> bool {
    if cap == 0 {
        return false;
    }
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    match v {
        Value::Text(t) if t.len() > cap => {
            cut_text(t, cap);
            true
        }
        Value::Blob(b) if b.len() > cap => {
            let cut = b.len() - cap;
            b.truncate(cap);
            b.extend_from_slice(format!("…[{cut} bytes cut]").as_bytes());
            true
        }
        _ => false,
    }
}

/// Where [`Engine::run_each`] hands each row, with the column names; an
/// error stops the query.
pub type OnRow<'a> = dyn FnMut(&[String], Vec<Value>) -> Result<(), String> + 'a;

/// Runs queries on this host's tables.
#[derive(Clone)]
pub struct Engine {
    registry: Arc<Registry>,
    limits: Limits,
}

impl Engine {
    pub fn new(registry: Arc<Registry>, limits: Limits) -> Self {
        heap::configure_allocator();
        Self { registry, limits }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Guards and runs `sql`, collecting its rows. Never panics on bad input:
    /// every failure is in the output's `error`, with whatever rows came
    /// before it.
    pub fn run(&self, sql: &str) -> QueryOutput {
        self.run_with(sql, Budget::unlimited())
    }

    /// As [`run`](Self::run), with a budget the caller can cancel (the
    /// watchdog and shutdown do).
    pub fn run_with(&self, sql: &str, cancel: Arc<Budget>) -> QueryOutput {
        self.run_collected(sql, cancel, None)
    }

    /// Guards and runs `sql`, handing each row to `on_row` as SQLite produces
    /// it, with the column names. An error from `on_row` stops the query
    /// ([`QueryError::Output`]). Freed memory goes back to the OS afterwards.
    pub fn run_each(&self, sql: &str, cancel: Arc<Budget>, on_row: &mut OnRow<'_>) -> QueryOutput {
        self.run_each_in(sql, cancel, None, on_row)
    }

    /// As [`run_with`](Self::run_with) for a scheduled run: event tables
    /// are read through `window`, so the run sees only the events since the
    /// last run that committed it.
    pub fn run_scheduled(
        &self,
        sql: &str,
        cancel: Arc<Budget>,
        window: Arc<Window>,
    ) -> QueryOutput {
        self.run_collected(sql, cancel, Some(window))
    }

    fn run_collected(
        &self,
        sql: &str,
        cancel: Arc<Budget>,
        window: Option<Arc<Window>>,
    ) -> QueryOutput {
        let mut rows = Vec::new();
        let mut out = self.run_each_in(sql, cancel, window, &mut |_, row| {
            rows.push(row);
            Ok(())
        });
        out.rows = rows;
        out
    }

    fn run_each_in(
        &self,
        sql: &str,
        cancel: Arc<Budget>,
        window: Option<Arc<Window>>,
        on_row: &mut OnRow<'_>,
    ) -> QueryOutput {
        let before = ThreadUsage::now();
        let mut out = self.run_inner(sql, cancel, window, on_row);
        if let (Some(before), Some(after)) = (before, ThreadUsage::now()) {
            (out.user_time, out.system_time, out.memory_growth) = after.since(&before);
        }
        heap::release_free_memory();
        out
    }

    fn run_inner(
        &self,
        sql: &str,
        cancel: Arc<Budget>,
        window: Option<Arc<Window>>,
        on_row: &mut OnRow<'_>,
    ) -> QueryOutput {
        let started = Instant::now();
        if let Err(e) = sweep_proto::guard::check(sql) {
            let why = match e {
                sweep_proto::ProtoError::Refused(why) => why,
                other => other.to_string(),
            };
            return QueryOutput::failed(QueryError::Refused(why), started);
        }
        let mut budget = Budget::until(started + self.limits.wall_time).with_window(window);
        let mut _heap = None;
        if self.limits.max_memory_bytes > 0 {
            budget = budget.with_memory_limit(self.limits.max_memory_bytes);
            _heap = Some(heap::HeapLimit::new(self.limits.max_memory_bytes));
        }
        let shared = ScanShared::new(budget.clone(), self.registry.env().clone());
        let (conn, watch) = match self.connect(&budget, &cancel, shared.clone()) {
            Ok(c) => c,
            Err(e) => return QueryOutput::failed(QueryError::Sql(e.to_string()), started),
        };
        let mut out = self.execute(&conn, &watch, sql, &budget, &cancel, on_row);
        // The connection (and every row its cursors hold) goes before the
        // heap limit is lifted.
        drop(conn);
        out.generated = shared
            .generated
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default();
        out.scans = shared.scans.lock().map(|s| s.clone()).unwrap_or_default();
        out.reads = budget.reads();
        out.elapsed = started.elapsed();
        out
    }

    fn connect(
        &self,
        budget: &Arc<Budget>,
        cancel: &Arc<Budget>,
        shared: Arc<ScanShared>,
    ) -> rusqlite::Result<(Connection, Watch)> {
        let mut conn = Connection::open_with_flags(
            ":memory:",
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_MEMORY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        for table in self.registry.tables() {
            vtab::register(&conn, table.clone(), shared.clone())?;
        }
        sweep_proto::functions::register(&conn)?;
        // The guard's limits and authorizer, at prepare and at run time.
        let registry = self.registry.clone();
        let watch = guard::install(&mut conn, move |t| registry.contains(t))?;
        let (budget, cancel) = (budget.clone(), cancel.clone());
        conn.progress_handler(
            1_000,
            Some(move || {
                if cancel.is_over() {
                    budget.cancelled.store(true, Ordering::Relaxed);
                }
                budget.is_over()
            }),
        )?;
        Ok((conn, watch))
    }

    fn execute(
        &self,
        conn: &Connection,
        watch: &Watch,
        sql: &str,
        budget: &Budget,
        cancel: &Budget,
        on_row: &mut OnRow<'_>,
    ) -> QueryOutput {
        let mut out = QueryOutput::default();
        let limit_error = |budget: &Budget| {
            if budget.memory_exceeded() {
                QueryError::Limit(format!(
                    "memory limit of {} MiB reached",
                    self.limits.max_memory_bytes / (1024 * 1024)
                ))
            } else if cancel.is_over() {
                QueryError::Limit("cancelled".into())
            } else if budget.is_over() {
                QueryError::Limit(format!(
                    "wall time limit of {} reached",
                    humantime::format_duration(self.limits.wall_time)
                ))
            } else {
                QueryError::Sql("interrupted".into())
            }
        };
        let failure = |e: &rusqlite::Error| {
            if is_out_of_memory(e) && self.limits.max_memory_bytes > 0 {
                budget.exceed_memory();
            }
            if is_interrupt(e) || budget.is_over() {
                limit_error(budget)
            } else {
                QueryError::Sql(sqlite_message(e))
            }
        };
        let mut stmt = match guard::prepare(conn, watch, sql) {
            Ok((stmt, _)) => stmt,
            Err(ProtoError::Refused(why)) => {
                out.error = Some(QueryError::Refused(why));
                return out;
            }
            Err(e) => {
                out.error = Some(if budget.is_over() {
                    limit_error(budget)
                } else {
                    QueryError::Sql(e.to_string())
                });
                return out;
            }
        };
        out.columns = stmt.column_names().map(str::to_string).collect();
        let width = out.columns.len();
        let mut rows = match stmt.query([]) {
            Ok(r) => r,
            Err(e) => {
                out.error = Some(failure(&e));
                return out;
            }
        };
        let mut bytes = 0u64;
        loop {
            match rows.next() {
                Ok(Some(row)) => {
                    if out.row_count >= self.limits.max_rows {
                        out.error = Some(QueryError::Limit(format!(
                            "row limit of {} reached",
                            self.limits.max_rows
                        )));
                        break;
                    }
                    let mut values = Vec::with_capacity(width);
                    for i in 0..width {
                        let v = row.get_ref(i).unwrap_or(ValueRef::Null);
                        let mut value = crate::tables::owned(v);
                        if cap_value(&mut value, self.limits.max_value_bytes) {
                            out.truncated_values += 1;
                        }
                        bytes += value_bytes(&value);
                        values.push(value);
                    }
                    if bytes > self.limits.max_bytes {
                        out.error = Some(QueryError::Limit(format!(
                            "result size limit of {} bytes reached",
                            self.limits.max_bytes
                        )));
                        break;
                    }
                    if let Err(e) = on_row(&out.columns, values) {
                        out.error = Some(QueryError::Output(e));
                        break;
                    }
                    out.row_count += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(failure(&e));
                    break;
                }
            }
        }
        out
    }
}

/// SQLite refused an allocation: past the per-query heap limit.
fn is_out_of_memory(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::OutOfMemory)
}

fn is_interrupt(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::OperationInterrupted)
        || matches!(e, rusqlite::Error::ModuleError(m) if m == "interrupted")
}

/// SQLite's own message, without rusqlite's wrapping.
fn sqlite_message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(msg)) => msg.clone(),
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        rusqlite::Error::ModuleError(msg) => msg.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
