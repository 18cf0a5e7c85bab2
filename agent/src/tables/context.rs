//! What a table's generator is told about the query: which columns it uses and
//! which constraints were pushed down, and where its rows go.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::types::Value;

use super::{Column, TableEnv};
use crate::error::AgentError;

/// A pushed-down constraint operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=` or one value of an `IN (…)` list.
    Eq,
    /// `LIKE`, with `%` and `_` wildcards.
    Like,
}

#[derive(Debug, Clone)]
pub struct Constraint {
    pub column: usize,
    pub op: Op,
    /// Several values for an `IN (…)` list handed over whole.
    pub values: Vec<Value>,
}

/// Cancellation and deadline shared by every table scan of one query, so a
/// long generator (a recursive `file` walk) stops when the query's limits do;
/// and an account of the OS sources the scans read, which shows push-down and
/// column pruning at work (tests, `.timer on` in the shell).
#[derive(Debug, Default)]
pub struct Budget {
    pub deadline: Option<Instant>,
    pub cancelled: AtomicBool,
    reads: Mutex<BTreeMap<&'static str, u64>>,
    /// The agent's resident memory may not pass this while the query runs:
    /// its size when the query started plus the query's allowance, so one
    /// query's leftovers never count against the next.
    memory_limit: Option<u64>,
    memory_exceeded: AtomicBool,
    checks: AtomicU32,
    /// A scheduled run's view of the event tables: only what came since its
    /// last run. None for hunts and one-off queries: the whole buffer.
    pub window: Option<Arc<crate::events::Window>>,
}

/// Memory is sampled on every this-many checks: reading /proc/self/statm
/// costs microseconds, checks come every few thousand SQLite steps.
const MEMORY_SAMPLE_EVERY: u32 = 128;

impl Budget {
    pub fn unlimited() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A budget that ends at `deadline`.
    pub fn until(deadline: Instant) -> Arc<Self> {
        Arc::new(Self {
            deadline: Some(deadline),
            ..Self::default()
        })
    }

    /// Also stops the query once the process's resident memory has grown by
    /// more than `bytes` since now.
    pub fn with_memory_limit(mut self: Arc<Self>, bytes: u64) -> Arc<Self> {
        if let Some(b) = Arc::get_mut(&mut self) {
            b.memory_limit = Some(resident_bytes().unwrap_or(0).saturating_add(bytes));
        }
        self
    }

    /// Reads event tables through `window` (a scheduled run).
    pub fn with_window(
        mut self: Arc<Self>,
        window: Option<Arc<crate::events::Window>>,
    ) -> Arc<Self> {
        if let Some(b) = Arc::get_mut(&mut self) {
            b.window = window;
        }
        self
    }

    /// Marks the query as stopped for its memory (SQLite refused to grow).
    pub fn exceed_memory(&self) {
        self.memory_exceeded.store(true, Ordering::Relaxed);
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether the query was stopped for using too much memory.
    pub fn memory_exceeded(&self) -> bool {
        self.memory_exceeded.load(Ordering::Relaxed)
    }

    /// Counts one read of `source` (e.g. `"/proc/<pid>/cmdline"`).
    pub fn note_read(&self, source: &'static str) {
        if let Ok(mut reads) = self.reads.lock() {
            *reads.entry(source).or_default() += 1;
        }
    }

    /// Reads counted so far, by source.
    pub fn reads(&self) -> BTreeMap<&'static str, u64> {
        self.reads.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn is_over(&self) -> bool {
        if self.cancelled.load(Ordering::Relaxed)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
        {
            return true;
        }
        if let Some(limit) = self.memory_limit {
            let n = self.checks.fetch_add(1, Ordering::Relaxed);
            if n.is_multiple_of(MEMORY_SAMPLE_EVERY)
                && resident_bytes().is_some_and(|rss| rss > limit)
            {
                self.memory_exceeded.store(true, Ordering::Relaxed);
                self.cancelled.store(true, Ordering::Relaxed);
                return true;
            }
        }
        false
    }
}

/// This process's resident memory, from /proc/self/statm.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * super::util::page_size())
}

pub struct ScanContext<'a> {
    pub(crate) table: &'static str,
    pub(crate) columns: &'static [Column],
    pub(crate) col_used: u64,
    pub(crate) constraints: Vec<Constraint>,
    pub(crate) budget: &'a Budget,
    pub(crate) env: &'a TableEnv,
}

impl<'a> ScanContext<'a> {
    /// A context for tests and direct calls: every column used, no constraint.
    pub fn all(
        table: &'static str,
        columns: &'static [Column],
        budget: &'a Budget,
        env: &'a TableEnv,
    ) -> Self {
        Self {
            table,
            columns,
            col_used: u64::MAX,
            constraints: Vec::new(),
            budget,
            env,
        }
    }

    /// Paths and agent facts.
    pub fn env(&self) -> &TableEnv {
        self.env
    }

    pub fn with_constraint(mut self, column: &str, op: Op, values: Vec<Value>) -> Self {
        let column = self.index_of(column);
        self.constraints.push(Constraint { column, op, values });
        self
    }

    pub fn index_of(&self, column: &str) -> usize {
        self.columns
            .iter()
            .position(|c| c.name == column)
            .unwrap_or_else(|| panic!("table {} has no column {column}", self.table))
    }

    /// Whether the query reads `column`. Generators skip expensive reads the
    /// query does not need.
    pub fn used(&self, column: &str) -> bool {
        let i = self.index_of(column);
        // SQLite sets bit 63 for "column 63 or later".
        let bit = i.min(63);
        self.col_used & (1u64 << bit) != 0
    }

    /// Whether any of `columns` is read.
    pub fn any_used(&self, columns: &[&str]) -> bool {
        columns.iter().any(|c| self.used(c))
    }

    /// The values `column` must equal, if the query says so (`=` or `IN`).
    /// Several `=` constraints on one column intersect; here they are merged,
    /// and SQLite re-checks every row, so a superset is always correct.
    pub fn eq_values(&self, column: &str) -> Option<Vec<Value>> {
        let i = self.index_of(column);
        let mut out: Option<Vec<Value>> = None;
        for c in self
            .constraints
            .iter()
            .filter(|c| c.column == i && c.op == Op::Eq)
        {
            out.get_or_insert_with(Vec::new)
                .extend(c.values.iter().cloned());
        }
        out
    }

    /// Integer values `column` must equal, or None when the query does not
    /// narrow it to a list the table can look up exactly.
    ///
    /// A push-down may never narrow a result: SQLite compares `pid = '01'`
    /// or `pid = 1.0` numerically, so such values are converted the way its
    /// affinity does, and a value whose conversion is not certain (`'1e0'`, a
    /// blob) turns the look-up off; SQLite then filters a full scan. NULL
    /// equals nothing and is dropped.
    pub fn eq_integers(&self, column: &str) -> Option<Vec<i64>> {
        let vals = self.eq_values(column)?;
        let mut out = Vec::with_capacity(vals.len());
        for v in &vals {
            match v {
                Value::Null => {}
                Value::Integer(i) => out.push(*i),
                // Exactly an integer in i64's range: -2^63 <= f < 2^63.
                Value::Real(f)
                    if f.fract() == 0.0
                        && *f >= -9.223_372_036_854_776e18
                        && *f < 9.223_372_036_854_776e18 =>
                {
                    out.push(*f as i64)
                }
                Value::Text(t) => out.push(t.trim().parse().ok()?),
                _ => return None,
            }
        }
        out.sort_unstable();
        out.dedup();
        Some(out)
    }

    /// Text values `column` must equal, or None when the query does not
    /// narrow it to values the table can compare exactly: integers become
    /// their decimal text (as SQLite's text affinity makes them), while a real
    /// or a blob turns the look-up off (see [`eq_integers`](Self::eq_integers)).
    pub fn eq_texts(&self, column: &str) -> Option<Vec<String>> {
        let vals = self.eq_values(column)?;
        let mut out = Vec::with_capacity(vals.len());
        for v in &vals {
            match v {
                Value::Null => {}
                Value::Text(t) => out.push(t.clone()),
                Value::Integer(i) => out.push(i.to_string()),
                _ => return None,
            }
        }
        out.sort();
        out.dedup();
        Some(out)
    }

    /// `LIKE` patterns on `column`.
    pub fn like_patterns(&self, column: &str) -> Vec<String> {
        let i = self.index_of(column);
        self.constraints
            .iter()
            .filter(|c| c.column == i && c.op == Op::Like)
            .flat_map(|c| c.values.iter().filter_map(value_text))
            .collect()
    }

    /// Counts one read of an OS source for this query's account.
    pub fn note_read(&self, source: &'static str) {
        self.budget.note_read(source);
    }

    /// Fails when the query's time is up, so long scans end with the query.
    pub fn check(&self) -> Result<(), AgentError> {
        if self.budget.is_over() {
            Err(AgentError::Interrupted)
        } else {
            Ok(())
        }
    }

    /// A new row of this table, every value NULL.
    pub fn row(&self) -> Row {
        Row {
            columns: self.columns,
            values: vec![Value::Null; self.columns.len()],
        }
    }

    pub fn table(&self) -> &'static str {
        self.table
    }
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Text(t) => Some(t.clone()),
        Value::Integer(i) => Some(i.to_string()),
        // SQLite renders reals its own way ("1.0e+20"); such a pattern is
        // left to SQLite rather than guessed.
        _ => None,
    }
}

/// One row under construction. Setting a column the table does not have is a
/// programming error and panics in tests.
#[derive(Debug, Clone)]
pub struct Row {
    columns: &'static [Column],
    pub(crate) values: Vec<Value>,
}

impl Row {
    /// A row of a table with `columns`, every value NULL.
    pub fn empty(columns: &'static [Column]) -> Self {
        Self {
            columns,
            values: vec![Value::Null; columns.len()],
        }
    }

    pub fn set(&mut self, column: &str, value: impl IntoValue) -> &mut Self {
        let i = self
            .columns
            .iter()
            .position(|c| c.name == column)
            .unwrap_or_else(|| panic!("no column {column}"));
        self.values[i] = value.into_value();
        self
    }

    /// Sets a value that may be missing (permission denied, absent): NULL then.
    pub fn set_opt<V: IntoValue>(&mut self, column: &str, value: Option<V>) -> &mut Self {
        self.set(column, value)
    }

    pub fn get(&self, column: &str) -> Option<&Value> {
        self.columns
            .iter()
            .position(|c| c.name == column)
            .map(|i| &self.values[i])
    }

    /// A text column's value; None when NULL or not text.
    pub fn text(&self, column: &str) -> Option<&str> {
        match self.get(column) {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// An integer column's value; None when NULL or not an integer.
    pub fn int(&self, column: &str) -> Option<i64> {
        match self.get(column) {
            Some(Value::Integer(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn values(&self) -> &[Value] {
        &self.values
    }
}

/// Anything a table may store in a column.
pub trait IntoValue {
    fn into_value(self) -> Value;
}

impl IntoValue for Value {
    fn into_value(self) -> Value {
        self
    }
}

impl IntoValue for &str {
    fn into_value(self) -> Value {
        Value::Text(self.to_string())
    }
}

impl IntoValue for String {
    fn into_value(self) -> Value {
        Value::Text(self)
    }
}

impl IntoValue for &String {
    fn into_value(self) -> Value {
        Value::Text(self.clone())
    }
}

impl IntoValue for f64 {
    fn into_value(self) -> Value {
        Value::Real(self)
    }
}

impl IntoValue for bool {
    fn into_value(self) -> Value {
        Value::Integer(i64::from(self))
    }
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl IntoValue for $t {
            fn into_value(self) -> Value {
                Value::Integer(self as i64)
            }
        }
    )*};
}
int_value!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize);

impl<T: IntoValue> IntoValue for Option<T> {
    fn into_value(self) -> Value {
        self.map_or(Value::Null, IntoValue::into_value)
    }
}
