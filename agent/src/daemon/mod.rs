//! The long-running agent (`sweep-agent run`).
//!
//! - [`heartbeat`]: the lease-bound liveness key with resource figures.
//! - [`watcher`]: following a prefix of the coordination store (etcd or
//!   ZooKeeper, [`sweep_proto::coordination`]) without missing a change.
//! - [`executor`]: the one loop that runs queries: hunts first, then
//!   scheduled work. A hunt flows one way: [`watcher`] → [`executor`] →
//!   [`hunts`] → [`trust`] → targeting → [`queries`] (the engine) →
//!   [`records`] → [`sink`].
//! - [`hunts`]: answering each hunt once; [`ledger`]: hunts already run,
//!   across restarts.
//! - [`scheduler`]: scheduled queries and packs; [`diff`]: differential
//!   results across runs.
//! - [`queries`]: running queries off the async threads, collected or
//!   streamed; [`records`]: rows and statuses as Kafka records; [`memo`]:
//!   answers shared by the fleet simulator's virtual agents.
//! - [`sink`] and [`spool`]: every record is spooled to disk first, then
//!   sent to Kafka in order; [`quarantine`]: records the broker refuses for
//!   good.
//! - [`state_file`]: crash-safe writes of the small state files.
//! - [`trust`]: which commands from the store run: signatures, keys, versions.
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
pub mod memo;
pub mod metrics;
pub mod quarantine;
pub mod queries;
pub mod records;
pub mod scheduler;
pub mod selfstat;
pub mod sink;
pub mod spool;
pub mod state_file;
pub mod trust;
pub mod watcher;

use std::sync::Arc;
use std::time::Duration;

use sweep_proto::time::unix_now;
use sweep_proto::{topics, Store};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::Config;
use crate::engine::Engine;
use crate::error::AgentError;
use crate::events::Events;
use crate::tables::schedule_stats::ScheduleStats;
use crate::tables::{AgentFacts, Registry, TableEnv};
use metrics::Metrics;
use queries::{Counters, Queries};
use records::Records;
use sink::Sink;

/// The agent's parts, one per job, which every task reaches through here.
#[derive(Clone)]
pub struct Shared {
    inner: Arc<SharedInner>,
}

pub struct SharedInner {
    pub config: Config,
    pub host_id: String,
    pub started_at: u64,
    /// Which commands run: signatures, names, lifetimes, versions.
    pub verifier: trust::Verifier,
    /// The engine, as the daemon runs it.
    pub queries: Queries,
    /// Answers as Kafka records.
    pub records: Records,
    /// The spool and the producer.
    pub sink: Sink,
    pub metrics: Metrics,
    pub counters: Arc<Counters>,
    /// What `/ready` reports.
    pub health: health::Health,
    /// Bumped to make every watch read its prefix again (a restarted
    /// executor starts with an empty schedule).
    pub resync: watch::Sender<u64>,
    /// While true the executor holds: changes queue up and nothing runs (the
    /// fleet simulator's "stalled agent" fault).
    pub paused: watch::Sender<bool>,
    /// What the scheduler runs and how its runs went, as `osquery_schedule`
    /// and `osquery_packs` report it (the engine's tables read the same).
    pub schedule: Arc<ScheduleStats>,
    /// The event buffers and sources (the engine's event tables read them).
    pub events: Option<Arc<Events>>,
}

impl std::ops::Deref for Shared {
    type Target = SharedInner;
    fn deref(&self) -> &SharedInner {
        &self.inner
    }
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

/// What every agent of one process shares: the engine, the sink (one spool,
/// one producer) and the metrics. A host runs one agent on it; the fleet
/// simulator runs thousands.
#[derive(Clone)]
pub struct Process {
    pub engine: Engine,
    pub sink: Sink,
    pub metrics: Metrics,
    /// Answers shared between agents (the simulator's memoised queries).
    pub memo: Option<Arc<memo::Memo>>,
}

impl Process {
    /// The engine, metrics and sink of `config`, for the agent `host_id`.
    pub fn new(config: &Config, host_id: &str, started_at: u64) -> Result<Self, AgentError> {
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|e| AgentError::io(format!("creating {}", config.state_dir.display()), e))?;
        let metrics = Metrics::new()?;
        let facts = AgentFacts {
            instance_id: format!("{host_id}-{started_at}"),
            host_id: host_id.to_string(),
            start_time: started_at,
            config_hash: String::new(),
        };
        let registry = Arc::new(Registry::new(TableEnv {
            facts,
            // osquery_flags reports the settings in force.
            config: Arc::new(config.clone()),
            // Started by the daemon (`start`); the fleet simulator's agents
            // run no event sources.
            events: Some(Events::new(&config.events)),
            ..TableEnv::default()
        }));
        metrics.watch_events(registry.env().events.clone())?;
        let engine = Engine::new(registry, config.limits.clone());
        let sink = Sink::new(config, topics::RESULTS, metrics.clone())?;
        Ok(Self {
            engine,
            sink,
            metrics,
            memo: None,
        })
    }

    /// Makes sure the topics the agents write exist. Not fatal: they may
    /// exist already, or be created by an operator on a broker that refuses
    /// us admin rights. Records spool meanwhile.
    pub async fn ensure_topics(&self, config: &Config) {
        if let Err(e) = topics::ensure(&config.kafka, &[topics::RESULTS, topics::HUNTS]).await {
            warn!(error = %e, "could not make sure the results and hunts topics exist");
        }
    }
}

/// One agent's own parts (identity, trust, ledgers under `config.state_dir`,
/// counters, health) on a process's shared ones.
pub fn agent(config: Config, started_at: u64, process: &Process) -> Result<Shared, AgentError> {
    let host_id = config.host_id();
    let bad_config = |reason: String| AgentError::Config {
        path: "agent configuration".into(),
        reason,
    };
    sweep_proto::Keyspace::check_host_id(&host_id).map_err(bad_config)?;
    std::fs::create_dir_all(&config.state_dir)
        .map_err(|e| AgentError::io(format!("creating {}", config.state_dir.display()), e))?;
    let verifier = trust::Verifier::new(&config.trust, &config.state_dir)?;
    // This host's own key: its answers are signed with it.
    let identity = sweep_proto::identity::AgentKey::load_or_create(
        &config.state_dir.join(sweep_proto::identity::KEY_FILE),
    )?;
    let counters = Arc::new(Counters::default());
    let mut queries = Queries::new(
        process.engine.clone(),
        process.sink.clone(),
        process.metrics.clone(),
        counters.clone(),
    );
    if let Some(memo) = &process.memo {
        queries = queries.memoised(memo.clone());
    }
    Ok(Shared {
        inner: Arc::new(SharedInner {
            records: Records::new(host_id.clone(), &config.labels, identity),
            config,
            host_id,
            started_at,
            verifier,
            queries,
            sink: process.sink.clone(),
            metrics: process.metrics.clone(),
            counters,
            health: health::Health::default(),
            resync: watch::Sender::new(0),
            paused: watch::Sender::new(false),
            schedule: process.engine.registry().env().schedule.clone(),
            events: process.engine.registry().env().events.clone(),
        }),
    })
}

/// Starts one agent's tasks on `store`: its liveness registration, its
/// watches of hunts, schedules and packs, and its executor. They stop when
/// `shutdown` turns true.
pub fn spawn_agent(
    shared: &Shared,
    store: &Store,
    shutdown: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    {
        let queries = shared.queries.clone();
        let mut shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
            queries.stop();
        }));
    }
    let (changes_tx, changes_rx) = mpsc::channel(1024);
    tasks.push(tokio::spawn(heartbeat::run(
        shared.clone(),
        store.clone(),
        shutdown.clone(),
    )));
    let keys = shared.config.keyspace();
    for (source, prefix) in [
        (watcher::Source::Hunts, keys.hunts()),
        (watcher::Source::Schedules, keys.schedules()),
        (watcher::Source::Packs, keys.packs()),
    ] {
        tasks.push(tokio::spawn(watcher::watch_prefix(
            shared.clone(),
            store.clone(),
            source,
            prefix,
            changes_tx.clone(),
            shutdown.clone(),
        )));
    }
    tasks.push(tokio::spawn(executor::supervise(
        shared.clone(),
        changes_rx,
        shutdown.clone(),
    )));
    tasks
}

/// Starts every task; they stop when `shutdown` turns true.
pub async fn start(config: Config, shutdown: watch::Receiver<bool>) -> Result<Running, AgentError> {
    let host_id = config.host_id();
    config.coordination().validate()?;
    let started_at = unix_now();
    let process = Process::new(&config, &host_id, started_at)?;
    let shared = agent(config.clone(), started_at, &process)?;
    if !shared.verifier.has_keys() && !config.trust.allow_unsigned {
        warn!("no [trust] public_keys: every hunt will be rejected (create a key with `sweep keygen`)");
    }
    if config.trust.allow_unsigned {
        warn!("trust.allow_unsigned is set: anyone who can write to etcd can run SQL on this host");
    }
    process.ensure_topics(&config).await;
    if let Some(events) = &shared.events {
        events.start();
        let events = events.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = stop.wait_for(|stop| *stop).await;
            events.stop();
        });
    }
    // The admin endpoint first: `/live` answers while the store is still away.
    let mut tasks = Vec::new();
    if let Some(listener) = admin::bind(&config.metrics.listen).await? {
        tasks.push(tokio::spawn(admin::serve(
            listener,
            shared.clone(),
            shutdown.clone(),
        )));
    }
    let store = connect_store(&config, shutdown.clone()).await?;
    tasks.extend(spawn_agent(&shared, &store, &shutdown));
    // Queries stop and the lease goes at once; the spool gets what is left
    // of the stop's time, less a margin for the rest.
    let grace = config
        .shutdown_timeout
        .saturating_sub(Duration::from_secs(1));
    tasks.push(tokio::spawn(process.sink.clone().drain(shutdown, grace)));
    info!(host_id = %host_id, version = sweep_proto::VERSION, "agent started");
    Ok(Running { tasks, shared })
}

/// Connects to the coordination store, retrying until it answers or
/// shutdown: an agent that boots before etcd or ZooKeeper must still come
/// up. A ZooKeeper session lasts the heartbeat's TTL, so the liveness node
/// goes that long after the agent dies.
pub async fn connect_store(
    config: &Config,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Store, AgentError> {
    let coordination = config.coordination();
    let mut backoff = Duration::from_millis(500);
    loop {
        match Store::connect(&coordination, Some(config.heartbeat.ttl)).await {
            Ok(c) => return Ok(c),
            Err(e) => {
                warn!(
                    error = %e,
                    backend = coordination.backend().name(),
                    endpoints = %coordination.endpoints(),
                    retry_in = ?backoff,
                    "coordination store unreachable"
                )
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return Err(AgentError::Shutdown),
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}
