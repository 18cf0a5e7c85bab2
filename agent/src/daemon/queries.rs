//! Running queries in the daemon: off the async threads, counted in metrics,
//! cancelled at shutdown, and either collected (scheduled and discovery
//! queries) or streamed to the spool in batches as SQLite produces rows
//! (hunts), so a large answer is never held whole.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::types::Value;

use super::memo::Memo;
use super::metrics::Metrics;
use super::sink::Sink;
use super::spool::Record;
use crate::engine::{value_to_string, Engine, QueryError, QueryOutput};
use crate::error::AgentError;
use crate::events::Window;
use crate::tables::Budget;

/// Rows a streaming query spools at a time.
const STREAM_BATCH: usize = 1_000;

/// Counters since start, reported in heartbeats.
#[derive(Default)]
pub struct Counters {
    pub hunts_run: AtomicU64,
    pub queries_failed: AtomicU64,
    pub rows_sent: AtomicU64,
}

#[derive(Clone)]
pub struct Queries {
    engine: Engine,
    sink: Sink,
    metrics: Metrics,
    counters: Arc<Counters>,
    /// Cancelled at shutdown: running queries stop at their next step.
    stopping: Arc<Budget>,
    /// Answers shared with other agents of this process (the simulator).
    memo: Option<Arc<Memo>>,
}

impl Queries {
    pub fn new(engine: Engine, sink: Sink, metrics: Metrics, counters: Arc<Counters>) -> Self {
        Self {
            engine,
            sink,
            metrics,
            counters,
            stopping: Budget::unlimited(),
            memo: None,
        }
    }

    /// Takes answers from `memo` when another agent of this process ran
    /// the same query lately (the fleet simulator's virtual agents).
    pub fn memoised(mut self, memo: Arc<Memo>) -> Self {
        self.memo = Some(memo);
        self
    }

    /// Stops every running query at its next step, and every later one.
    pub fn stop(&self) {
        self.stopping.cancelled.store(true, Ordering::Relaxed);
    }

    /// Runs `sql` and collects its rows, counted under `kind`.
    pub async fn collect(&self, kind: &str, sql: &str) -> Result<QueryOutput, AgentError> {
        if let Some(memo) = &self.memo {
            let out = memo.answer(sql, || self.run(sql)).await?;
            self.count(kind, &out);
            return Ok((*out).clone());
        }
        let out = self.run(sql).await?;
        self.count(kind, &out);
        Ok(out)
    }

    /// A scheduled run: event tables are read through `window` (only what
    /// came since the query's last committed run). Memoised answers (the
    /// fleet simulator, which runs no event sources) ignore it.
    pub async fn collect_scheduled(
        &self,
        kind: &str,
        sql: &str,
        window: Arc<Window>,
    ) -> Result<QueryOutput, AgentError> {
        if self.memo.is_some() {
            return self.collect(kind, sql).await;
        }
        let engine = self.engine.clone();
        let owned = sql.to_string();
        let stopping = self.stopping.clone();
        let out =
            tokio::task::spawn_blocking(move || engine.run_scheduled(&owned, stopping, window))
                .await
                .map_err(|e| AgentError::Task(e.to_string()))?;
        self.count(kind, &out);
        Ok(out)
    }

    async fn run(&self, sql: &str) -> Result<QueryOutput, AgentError> {
        let engine = self.engine.clone();
        let sql = sql.to_string();
        let stopping = self.stopping.clone();
        tokio::task::spawn_blocking(move || engine.run_with(&sql, stopping))
            .await
            .map_err(|e| AgentError::Task(e.to_string()))
    }

    /// Runs `sql` and spools its rows in batches as they come, each turned
    /// into a record by `record`.
    pub async fn stream(
        &self,
        kind: &str,
        sql: &str,
        mut record: impl FnMut(BTreeMap<String, String>) -> Record + Send + 'static,
    ) -> Result<QueryOutput, AgentError> {
        if let Some(memo) = &self.memo {
            let answer = memo.answer(sql, || self.run(sql)).await?;
            let out = self.replay(&answer, record)?;
            self.count(kind, &out);
            return Ok(out);
        }
        let engine = self.engine.clone();
        let sink = self.sink.clone();
        let sql = sql.to_string();
        let stopping = self.stopping.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut batch = Vec::with_capacity(STREAM_BATCH);
            let mut on_row = |columns: &[String], row: Vec<Value>| {
                let fields = columns
                    .iter()
                    .zip(&row)
                    .map(|(c, v)| (c.clone(), value_to_string(v)))
                    .collect();
                batch.push(record(fields));
                if batch.len() >= STREAM_BATCH {
                    sink.send(&batch).map_err(|e| e.to_string())?;
                    batch.clear();
                }
                Ok(())
            };
            let mut out = engine.run_each(&sql, stopping, &mut on_row);
            if let Err(e) = sink.send(&batch) {
                out.error = Some(QueryError::Output(e.to_string()));
            }
            out
        })
        .await
        .map_err(|e| AgentError::Task(e.to_string()))?;
        self.count(kind, &out);
        Ok(out)
    }

    /// Sends a memoised answer's rows as this agent's, in batches.
    fn replay(
        &self,
        answer: &QueryOutput,
        mut record: impl FnMut(BTreeMap<String, String>) -> Record,
    ) -> Result<QueryOutput, AgentError> {
        let mut batch = Vec::with_capacity(STREAM_BATCH.min(answer.rows.len()));
        for fields in answer.string_rows() {
            batch.push(record(fields));
            if batch.len() >= STREAM_BATCH {
                self.sink.send(&batch)?;
                batch.clear();
            }
        }
        self.sink.send(&batch)?;
        Ok(QueryOutput {
            columns: answer.columns.clone(),
            rows: Vec::new(),
            row_count: answer.row_count,
            truncated_values: answer.truncated_values,
            error: answer.error.clone(),
            elapsed: answer.elapsed,
            ..QueryOutput::default()
        })
    }

    /// Whether every discovery query returns rows. A failing discovery query
    /// is an error, not a "no": the operator should hear about it.
    pub async fn discovery_passes(&self, queries: &[String]) -> Result<bool, String> {
        for sql in queries {
            let out = self
                .collect("discovery", sql)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(e) = out.error {
                return Err(format!("discovery query failed: {e}"));
            }
            if out.rows.is_empty() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn count(&self, kind: &str, out: &QueryOutput) {
        let outcome = match &out.error {
            None => "ok",
            Some(QueryError::Refused(_)) => "refused",
            Some(QueryError::Limit(_)) => "limit",
            Some(QueryError::Sql(_) | QueryError::Output(_)) => "error",
        };
        self.metrics
            .queries
            .with_label_values(&[kind, outcome])
            .inc();
        self.metrics
            .query_duration
            .observe(out.elapsed.as_secs_f64());
        self.metrics.result_rows.inc_by(out.row_count);
        self.metrics.values_truncated.inc_by(out.truncated_values);
        if out.error.is_some() {
            self.counters.queries_failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
