//! The daemon's configuration file (TOML). Every field has a default, so an
//! empty file runs an agent against the quickstart cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sweep_proto::settings::humantime_serde_compat as dur;
use sweep_proto::{
    Backend, Coordination, CoordinationSettings, EtcdSettings, KafkaSettings, ZooKeeperSettings,
};

use crate::engine::Limits;
use crate::error::AgentError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This host's id in the coordination store and on every result;
    /// defaults to the hostname.
    pub host_id: Option<String>,
    /// Labels hunts can target (`role = "web"`, `dc = "sh1"`).
    pub labels: BTreeMap<String, String>,
    /// Where the agent keeps state across restarts: the ledger of hunts it ran
    /// and the result spool.
    pub state_dir: PathBuf,
    /// Which coordination store hunts, schedules and liveness go through:
    /// `backend = "etcd"` (the default, `[etcd]`) or `"zookeeper"`
    /// (`[zookeeper]`).
    pub coordination: CoordinationSettings,
    pub etcd: EtcdSettings,
    /// ZooKeeper's servers, chroot, prefix, TLS and digest login; the
    /// agent's session timeout is its `[heartbeat] ttl`.
    pub zookeeper: ZooKeeperSettings,
    pub kafka: KafkaSettings,
    pub heartbeat: HeartbeatConfig,
    pub limits: Limits,
    pub spool: SpoolConfig,
    pub metrics: MetricsConfig,
    pub trust: TrustConfig,
    pub events: EventsConfig,
    /// How long a stop (SIGTERM, SIGINT) may take: running queries are
    /// interrupted at once, the lease is revoked, then the spool drains for
    /// what is left of this, and the agent exits. Keep it below systemd's
    /// `TimeoutStopSec`. Undelivered records stay spooled for the next start.
    #[serde(with = "sweep_proto::settings::humantime_serde_compat")]
    pub shutdown_timeout: std::time::Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host_id: None,
            labels: BTreeMap::new(),
            state_dir: PathBuf::from("/var/lib/sweep-agent"),
            coordination: CoordinationSettings::default(),
            etcd: EtcdSettings::default(),
            zookeeper: ZooKeeperSettings::default(),
            kafka: KafkaSettings::default(),
            heartbeat: HeartbeatConfig::default(),
            limits: Limits::default(),
            spool: SpoolConfig::default(),
            metrics: MetricsConfig::default(),
            trust: TrustConfig::default(),
            events: EventsConfig::default(),
            shutdown_timeout: std::time::Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatConfig {
    /// Lease TTL (ZooKeeper: the session timeout): an agent that stops
    /// heartbeating vanishes from the fleet after this.
    #[serde(with = "dur")]
    pub ttl: Duration,
    /// How often the heartbeat value (resources, counters) is rewritten; it
    /// is also rewritten at once when the agent's state (ready or not, and
    /// why) changes. The lease itself is kept alive at a third of `ttl`
    /// without a write: keep-alives are not raft writes, so an idle fleet of
    /// 10,000 costs etcd a few hundred writes a second at the default.
    #[serde(with = "dur", alias = "interval")]
    pub report_every: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(10),
            report_every: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Most bytes kept on disk while the broker is away; past this, new records
    /// are dropped, counted and logged.
    pub max_bytes: u64,
    /// How long the producer retries a record before it goes to the spool.
    #[serde(with = "dur")]
    pub delivery_timeout: Duration,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024 * 1024,
            delivery_timeout: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the Prometheus `/metrics` endpoint; empty turns it off.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9465".into(),
        }
    }
}

/// Which commands the agent runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// Hex ed25519 public keys (`sweep keygen` prints one); a hunt must be
    /// signed by one of them.
    pub public_keys: Vec<String>,
    /// Run unsigned hunts too. Only for a lab: anyone who can write to etcd
    /// can then run SQL on this host.
    pub allow_unsigned: bool,
    /// The longest a hunt may stay live (its expiry less its issue time, and
    /// its expiry from now); longer ones are refused.
    #[serde(with = "sweep_proto::settings::humantime_serde_compat")]
    pub max_hunt_lifetime: std::time::Duration,
}

impl Default for TrustConfig {
    fn default() -> Self {
        Self {
            public_keys: Vec::new(),
            allow_unsigned: false,
            max_hunt_lifetime: std::time::Duration::from_secs(24 * 3600),
        }
    }
}

/// Event tables (`process_events`, `socket_events`, `file_events`): what the
/// kernel reports as it happens, kept in memory with osquery's semantics.
/// The process connector and sock_diag need root (CAP_NET_ADMIN) and the
/// host's pid and network namespaces; a source the host cannot provide is
/// logged, shown inactive in `osquery_events`, and its table's queries fail
/// saying why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Run the event sources at all.
    pub enabled: bool,
    /// How long an event is kept (osquery's `events_expiry`).
    #[serde(with = "dur")]
    pub events_expiry: Duration,
    /// Most events kept per table (osquery's `events_max`); past it the
    /// oldest are dropped and counted (`sweep_agent_events_dropped_total`).
    pub events_max: usize,
    /// Paths `file_events` watches, by category, as osquery's `file_paths`:
    /// `%` stands for any characters within one path component, a final
    /// `%%` for everything below a directory (`etc = ["/etc/%%"]`,
    /// `ssh = ["/home/%/.ssh/%"]`). Empty: no `file_events`.
    pub file_paths: BTreeMap<String, Vec<String>>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            events_expiry: Duration::from_secs(3600),
            events_max: 50_000,
            file_paths: BTreeMap::new(),
        }
    }
}

impl Config {
    /// The coordination store in use, with its settings.
    pub fn coordination(&self) -> Coordination {
        Coordination::choose(self.coordination.backend, &self.etcd, &self.zookeeper)
    }

    /// The keyspace of the store in use.
    pub fn keyspace(&self) -> sweep_proto::Keyspace {
        match self.coordination.backend {
            Backend::Etcd => self.etcd.keyspace(),
            Backend::ZooKeeper => self.zookeeper.keyspace(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|e| AgentError::Config {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text).map_err(|reason| AgentError::Config {
            path: path.display().to_string(),
            reason,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The configured host id, or the machine's hostname.
    pub fn host_id(&self) -> String {
        self.host_id.clone().unwrap_or_else(|| {
            hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "localhost".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults_and_unknown_fields_fail() {
        let c = Config::parse("").unwrap();
        assert_eq!(c, Config::default());
        let c = Config::parse(
            "host_id = \"web-1\"\n[labels]\nrole = \"web\"\n[heartbeat]\nttl = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(c.host_id(), "web-1");
        assert_eq!(c.heartbeat.ttl, Duration::from_secs(5));
        assert!(Config::parse("hostid = 1")
            .unwrap_err()
            .contains("unknown field"));
    }
}
