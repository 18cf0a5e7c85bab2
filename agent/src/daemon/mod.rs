//! The long-running agent (`sweep-agent run`).
//!
//! - [`heartbeat`]: the lease-bound liveness key with resource figures.
//! - [`watcher`]: watching an etcd prefix without missing a change.
//! - [`executor`]: the one loop that runs queries: hunts first, then
//!   scheduled work.
//! - [`hunts`]: answering each hunt once; [`ledger`]: hunts already run,
//!   across restarts.
//! - [`scheduler`]: scheduled queries and packs; [`diff`]: differential
//!   results across runs.
//! - [`sink`] and [`spool`]: every record is spooled to disk first, then
//!   sent to Kafka in order; [`quarantine`]: records the broker refuses for
//!   good.
//! - [`state_file`]: crash-safe writes of the small state files.
//! - [`trust`]: which commands from etcd run: signatures, keys, versions.
//! - [`metrics`]: Prometheus metrics; [`admin`]: `/metrics`, `/live` and
//!   `/ready` ([`health`]).
//! - [`selfstat`]: the agent's own CPU and memory.
//!
//! Life cycle: one shutdown signal for the whole daemon, listened to from the
//! first moment. On SIGTERM or SIGINT running queries are cancelled, the
//! lease is revoked (so the agent leaves `sweep agents` at once), the spool
//! drains for what is left of `shutdown_timeout`, and the agent exits;
//! anything undelivered waits on disk.

pub mod admin;
pub mod diff;
pub mod executor;
pub mod health;
pub mod heartbeat;
pub mod hunts;
pub mod ledger;
pub mod metrics;
pub mod quarantine;
pub mod scheduler;
pub mod selfstat;
pub mod sink;
pub mod spool;
pub mod state_file;
pub mod trust;
pub mod watcher;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sweep_proto::heartbeat::Counters;
use sweep_proto::time::{calendar_time, unix_now, unix_now_ms};
use sweep_proto::{topics, Heartbeat, Resources, ResultRow};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::Config;
use crate::engine::{value_to_string, Engine, QueryError, QueryOutput};
use crate::error::AgentError;
use crate::tables::{AgentFacts, Budget, Registry, TableEnv};
use metrics::Metrics;
use sink::Sink;
use spool::Record;

/// Rows a streaming query spools at a time.
const STREAM_BATCH: usize = 1_000;

#[derive(Default)]
pub struct AtomicCounters {
    pub hunts_run: AtomicU64,
    pub queries_failed: AtomicU64,
    pub rows_sent: AtomicU64,
}

/// What every task of one agent shares.
#[derive(Clone)]
pub struct Shared {
    inner: Arc<SharedInner>,
}

pub struct SharedInner {
    pub config: Config,
    pub host_id: String,
    pub started_at: u64,
    pub engine: Engine,
    pub sink: Sink,
    pub metrics: Metrics,
    pub counters: AtomicCounters,
    /// Added to every result row, as osquery's decorators do.
    pub decorations: BTreeMap<String, String>,
    /// Which commands run: signatures, names, lifetimes, versions.
    pub verifier: trust::Verifier,
    /// Cancelled at shutdown: running queries stop at their next step.
    pub stopping: Arc<Budget>,
    /// What `/ready` reports.
    pub health: health::Health,
}

impl std::ops::Deref for Shared {
    type Target = SharedInner;
    fn deref(&self) -> &SharedInner {
        &self.inner
    }
}

impl Shared {
    pub fn heartbeat(&self, resources: Resources) -> Heartbeat {
        Heartbeat {
            host_id: self.host_id.clone(),
            version: sweep_proto::VERSION.to_string(),
            labels: self.config.labels.clone(),
            started_at: self.started_at,
            sent_at_ms: unix_now_ms(),
            resources,
            counters: Counters {
                hunts_run: self.counters.hunts_run.load(Ordering::Relaxed),
                queries_failed: self.counters.queries_failed.load(Ordering::Relaxed),
                rows_sent: self.counters.rows_sent.load(Ordering::Relaxed),
                records_quarantined: self.sink.quarantined(),
            },
            spool_depth: self.sink.spool_depth(),
        }
    }

    /// Runs a query off the async threads, collecting its rows, and counts
    /// it under `kind`.
    pub async fn run_query(&self, kind: &str, sql: &str) -> Result<QueryOutput, AgentError> {
        let engine = self.engine.clone();
        let sql = sql.to_string();
        let stopping = self.stopping.clone();
        let out = tokio::task::spawn_blocking(move || engine.run_with(&sql, stopping))
            .await
            .map_err(|e| AgentError::Task(e.to_string()))?;
        self.count_query(kind, &out);
        Ok(out)
    }

    /// Runs a query off the async threads and spools its rows in batches as
    /// they come, each turned into a record by `record`: a large answer is
    /// never held whole.
    pub async fn run_streaming(
        &self,
        kind: &str,
        sql: &str,
        record: impl Fn(BTreeMap<String, String>) -> Record + Send + 'static,
    ) -> Result<QueryOutput, AgentError> {
        let engine = self.engine.clone();
        let sink = self.sink.clone();
        let sql = sql.to_string();
        let stopping = self.stopping.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut batch = Vec::with_capacity(STREAM_BATCH);
            let mut on_row = |columns: &[String], row: Vec<rusqlite::types::Value>| {
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
        self.count_query(kind, &out);
        Ok(out)
    }

    fn count_query(&self, kind: &str, out: &QueryOutput) {
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
        if out.error.is_some() {
            self.counters.queries_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether every discovery query returns rows. A failing discovery query
    /// is an error, not a "no": the operator should hear about it.
    pub async fn discovery_passes(&self, queries: &[String]) -> Result<bool, String> {
        for sql in queries {
            let out = self
                .run_query("discovery", sql)
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

    /// One result row for `sweep.results`, in osquery's result-log form.
    pub fn result_record(&self, meta: RowMeta<'_>, columns: BTreeMap<String, String>) -> Record {
        let row = ResultRow {
            name: meta.name.to_string(),
            host_identifier: self.host_id.clone(),
            calendar_time: calendar_time(meta.now),
            unix_time: meta.now,
            epoch: meta.epoch,
            counter: meta.counter,
            decorations: self.decorations.clone(),
            columns,
            action: meta.action.to_string(),
            hunt_id: meta.hunt_id.map(str::to_string),
        };
        Record {
            key: self.host_id.clone(),
            value: serde_json::to_string(&row).expect("rows serialize"),
        }
    }

    pub fn record_resources(&self, r: &Resources) {
        self.metrics.cpu_percent.set(r.cpu_percent);
        self.metrics.rss_bytes.set(r.rss_bytes as i64);
        self.metrics.threads.set(r.threads as i64);
        self.metrics.open_fds.set(r.fds as i64);
    }
}

/// What a result row says besides its columns.
pub struct RowMeta<'a> {
    pub name: &'a str,
    pub action: &'a str,
    pub hunt_id: Option<&'a str>,
    pub epoch: u64,
    pub counter: u64,
    pub now: u64,
}

/// Runs the agent until SIGTERM or SIGINT, which are honoured from the first
/// moment, start-up included.
pub async fn run(config: Config) -> Result<(), AgentError> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        sweep_proto::runtime::shutdown_signal().await;
        info!("shutting down");
        let _ = tx.send(true);
    });
    let mut stop = rx.clone();
    // A stop during start-up drops whatever start-up was waiting on.
    let agent = tokio::select! {
        started = start(config, rx) => match started {
            Ok(agent) => agent,
            Err(AgentError::Shutdown) => return Ok(()),
            Err(e) => return Err(e),
        },
        _ = stop.wait_for(|stop| *stop) => return Ok(()),
    };
    let _ = stop.wait_for(|stop| *stop).await;
    agent.stopped().await;
    Ok(())
}

/// A started agent; tests drive it in-process.
pub struct Running {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shared: Shared,
}

impl Running {
    /// Waits, at most `shutdown_timeout` in all, for the tasks to finish
    /// after shutdown was signalled.
    pub async fn stopped(self) {
        let deadline = tokio::time::Instant::now() + self.shared.config.shutdown_timeout;
        for t in self.tasks {
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                warn!("a task did not stop in time");
            }
        }
        self.shared.sink.report_pending();
    }

    pub fn host_id(&self) -> &str {
        &self.shared.host_id
    }
}

/// Starts every task; they stop when `shutdown` turns true.
pub async fn start(config: Config, shutdown: watch::Receiver<bool>) -> Result<Running, AgentError> {
    let host_id = config.host_id();
    let started_at = unix_now();
    std::fs::create_dir_all(&config.state_dir)
        .map_err(|e| AgentError::io(format!("creating {}", config.state_dir.display()), e))?;
    let verifier = trust::Verifier::new(&config.trust, &config.state_dir)?;
    if !verifier.has_keys() && !config.trust.allow_unsigned {
        warn!("no [trust] public_keys: every hunt will be rejected (create a key with `sweep keygen`)");
    }
    if config.trust.allow_unsigned {
        warn!("trust.allow_unsigned is set: anyone who can write to etcd can run SQL on this host");
    }
    let metrics = Metrics::new()?;
    let facts = AgentFacts {
        instance_id: format!("{host_id}-{started_at}"),
        host_id: host_id.clone(),
        start_time: started_at,
        config_hash: String::new(),
    };
    let registry = Arc::new(Registry::new(TableEnv {
        facts,
        ..TableEnv::default()
    }));
    let engine = Engine::new(registry, config.limits.clone());
    let sink = Sink::new(&config, topics::RESULTS, metrics.clone())?;
    let ledger = ledger::Ledger::open(&config.state_dir.join("hunts.json"))?;
    let mut decorations = config.labels.clone();
    decorations.insert("host_id".into(), host_id.clone());
    let shared = Shared {
        inner: Arc::new(SharedInner {
            config: config.clone(),
            host_id: host_id.clone(),
            started_at,
            engine,
            sink: sink.clone(),
            metrics: metrics.clone(),
            counters: AtomicCounters::default(),
            decorations,
            verifier,
            stopping: Budget::unlimited(),
            health: health::Health::default(),
        }),
    };
    {
        let stopping = shared.stopping.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
            stopping.cancelled.store(true, Ordering::Relaxed);
        });
    }
    if let Err(e) = topics::ensure(&config.kafka, &[topics::RESULTS], 1).await {
        // Not fatal: the topic may exist already, or be created by an operator
        // on a broker that refuses us admin rights. Records spool meanwhile.
        warn!(error = %e, "could not make sure the results topic exists");
    }
    // The admin endpoint first: `/live` answers while etcd is still away.
    let mut tasks = Vec::new();
    if !config.metrics.listen.is_empty() {
        let listener = tokio::net::TcpListener::bind(&config.metrics.listen)
            .await
            .map_err(|e| {
                AgentError::io(format!("binding metrics on {}", config.metrics.listen), e)
            })?;
        tasks.push(tokio::spawn(admin::serve(
            listener,
            shared.clone(),
            shutdown.clone(),
        )));
    }
    let client = connect_etcd(&config, shutdown.clone()).await?;
    let (changes_tx, changes_rx) = mpsc::channel(1024);
    tasks.push(tokio::spawn(heartbeat::run(
        shared.clone(),
        client.clone(),
        shutdown.clone(),
    )));
    let keys = config.etcd.keyspace();
    for (source, prefix) in [
        (watcher::Source::Hunts, keys.hunts()),
        (watcher::Source::Schedules, keys.schedules()),
        (watcher::Source::Packs, keys.packs()),
    ] {
        tasks.push(tokio::spawn(watcher::watch_prefix(
            shared.clone(),
            client.clone(),
            source,
            prefix,
            changes_tx.clone(),
            shutdown.clone(),
        )));
    }
    let diffs = diff::DiffStore::open(&config.state_dir.join("differential"))?;
    tasks.push(tokio::spawn(executor::run(
        shared.clone(),
        hunts::HuntRunner::new(ledger),
        scheduler::Scheduler::new(diffs),
        changes_rx,
        shutdown.clone(),
    )));
    // Queries stop and the lease goes at once; the spool gets what is left
    // of the stop's time, less a margin for the rest.
    let grace = config
        .shutdown_timeout
        .saturating_sub(Duration::from_secs(1));
    tasks.push(tokio::spawn(sink.drain(shutdown, grace)));
    info!(host_id = %host_id, version = sweep_proto::VERSION, "agent started");
    Ok(Running { tasks, shared })
}

/// Connects to etcd, retrying until it answers or shutdown: an agent that
/// boots before etcd must still come up.
async fn connect_etcd(
    config: &Config,
    mut shutdown: watch::Receiver<bool>,
) -> Result<etcd_client::Client, AgentError> {
    let mut backoff = Duration::from_millis(500);
    loop {
        match config.etcd.connect().await {
            Ok(c) => return Ok(c),
            Err(e) => {
                warn!(error = %e, endpoints = ?config.etcd.endpoints, retry_in = ?backoff, "etcd unreachable")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return Err(AgentError::Shutdown),
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}
