//! `sweep-agent fleet`: a fleet of virtual agents in one process, to see
//! sweep at datacenter scale on one machine.
//!
//! Each virtual agent runs the daemon's own code ([`crate::daemon::agent`]
//! and [`crate::daemon::spawn_agent`]): its own host id and labels, identity
//! key, trust state and hunt ledger (under `state_dir/fleet/<host_id>/`), its
//! own registration (an etcd lease, or on ZooKeeper its own session and
//! ephemeral node), heartbeat key and watches, the real targeting, discovery
//! and signature checks, and its own executor. What the process shares: one
//! Kafka producer behind one spool (librdkafka costs several threads per
//! producer), a few etcd connections, the metrics, and
//! query answers ([`crate::daemon::memo`]: each query runs once and its rows
//! are sent under every virtual host id).
//!
//! - [`faults`]: the fault switches, over the admin endpoint: kill a share
//!   of the agents at once (their leases expire together), stall a share
//!   (their executors hold while their watches back up).

pub mod faults;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::Config;
use crate::daemon::{self, memo::Memo, Process, Shared};
use crate::error::AgentError;
use sweep_proto::time::unix_now;

/// How the fleet is made.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Virtual agents to run.
    pub agents: usize,
    /// Host ids are this prefix and a five-digit number.
    pub prefix: String,
    /// Agents started per second: a fleet ramps up without a lease storm.
    pub ramp_per_s: u32,
    /// Agents per etcd connection. On ZooKeeper every agent has a session
    /// of its own: liveness is per session there, and a killed agent's must
    /// end with it.
    pub per_connection: usize,
    /// How long a query's answer is reused by other agents.
    pub memo_ttl: Duration,
}

impl Default for FleetOptions {
    fn default() -> Self {
        Self {
            agents: 100,
            prefix: "sim-".into(),
            ramp_per_s: 500,
            per_connection: 100,
            memo_ttl: Duration::from_secs(60),
        }
    }
}

/// One virtual agent.
pub struct VirtualAgent {
    pub shared: Shared,
    tasks: Vec<JoinHandle<()>>,
    pub killed: bool,
}

impl VirtualAgent {
    /// Stops it dead: no lease revoke, no goodbye, as a host losing power.
    fn kill(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.killed = true;
    }
}

/// The running fleet, as the fault switches see it.
#[derive(Clone)]
pub struct Fleet {
    pub agents: Arc<Mutex<Vec<VirtualAgent>>>,
    pub memo: Arc<Memo>,
    pub process: Process,
}

/// Runs the fleet until `shutdown`.
pub async fn run(
    config: Config,
    opts: FleetOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    config.coordination().validate()?;
    let started_at = unix_now();
    let mut process = Process::new(&config, "fleet", started_at)?;
    let memo = Arc::new(Memo::new(opts.memo_ttl));
    process.memo = Some(memo.clone());
    process.ensure_topics(&config).await;
    let fleet = Fleet {
        agents: Arc::default(),
        memo,
        process: process.clone(),
    };
    let mut tasks = Vec::new();
    if let Some(listener) = daemon::admin::bind(&config.metrics.listen).await? {
        tasks.push(tokio::spawn(faults::serve(
            listener,
            fleet.clone(),
            shutdown.clone(),
        )));
    }
    let own_sessions = config.coordination().liveness_per_connection();
    let connections = if own_sessions {
        opts.agents
    } else {
        opts.agents.div_ceil(opts.per_connection.max(1)).max(1)
    };
    let mut clients = Vec::new();
    if !own_sessions {
        for _ in 0..connections {
            clients.push(daemon::connect_store(&config, shutdown.clone()).await?);
        }
    }
    let grace = config
        .shutdown_timeout
        .saturating_sub(Duration::from_secs(1));
    tasks.push(tokio::spawn(
        process.sink.clone().drain(shutdown.clone(), grace),
    ));
    info!(
        agents = opts.agents,
        connections,
        ramp_per_s = opts.ramp_per_s,
        "starting the fleet (query answers are memoised: each query runs once for all agents)"
    );
    let root: PathBuf = config.state_dir.join("fleet");
    let every = Duration::from_secs(1) / opts.ramp_per_s.max(1);
    let mut tick = tokio::time::interval(every);
    for i in 0..opts.agents {
        if *shutdown.borrow() {
            break;
        }
        tick.tick().await;
        let host_id = format!("{}{i:05}", opts.prefix);
        let mut cfg = config.clone();
        cfg.state_dir = root.join(&host_id);
        cfg.host_id = Some(host_id);
        cfg.labels
            .insert("fleet_group".into(), (i % 10).to_string());
        let shared = daemon::agent(cfg, started_at, &process)?;
        // Held only by the agent's tasks: killed, its session ends too.
        let store = match own_sessions {
            true => daemon::connect_store(&config, shutdown.clone()).await?,
            false => clients[i % connections].clone(),
        };
        let agent_tasks = daemon::spawn_agent(&shared, &store, &shutdown);
        fleet
            .agents
            .lock()
            .expect("the fleet lock is never poisoned")
            .push(VirtualAgent {
                shared,
                tasks: agent_tasks,
                killed: false,
            });
    }
    info!(agents = opts.agents, "fleet started");
    let mut stop = shutdown.clone();
    let _ = stop.wait_for(|s| *s).await;
    // Each live agent revokes its lease and leaves; then the spool drains.
    let handles: Vec<JoinHandle<()>> = {
        let mut agents = fleet
            .agents
            .lock()
            .expect("the fleet lock is never poisoned");
        agents
            .iter_mut()
            .filter(|a| !a.killed)
            .flat_map(|a| std::mem::take(&mut a.tasks))
            .collect()
    };
    let deadline = tokio::time::Instant::now() + config.shutdown_timeout;
    for h in handles.into_iter().chain(tasks) {
        if tokio::time::timeout_at(deadline, h).await.is_err() {
            warn!("a fleet task did not stop in time");
            break;
        }
    }
    process.sink.report_pending();
    Ok(())
}
