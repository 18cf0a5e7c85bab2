//! sweep-rules' configuration file (TOML).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sweep_proto::settings::humantime_serde_compat;
use sweep_proto::{
    Coordination, CoordinationSettings, EtcdSettings, KafkaSettings, ZooKeeperSettings,
};

use crate::RulesError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory of `*.toml` rule files.
    pub rules_dir: PathBuf,
    /// The consumer group; several sweep-rules processes with one group id
    /// share the partitions of `sweep.results`.
    pub group_id: String,
    pub kafka: KafkaSettings,
    /// Where `/metrics` and `/live` are served; "" turns them off.
    pub metrics_listen: String,
    /// Checking that scheduled rows come from the agents they name.
    pub integrity: IntegrityConfig,
    /// Consumers in this process, each a member of the group on its own
    /// thread; 0 means one per CPU core.
    pub workers: usize,
    /// The most records a worker takes in one batch (read, evaluated, their
    /// matches sent together, offsets stored).
    pub batch_records: usize,
    /// Where open suppression windows and the offsets they cover are kept
    /// across restarts ([`crate::checkpoint`]); "" keeps nothing.
    pub state_dir: PathBuf,
}

/// Each agent seals every scheduled run with its identity key; sweep-rules
/// checks the seals against the keys the controller pinned in the
/// coordination store (etcd or ZooKeeper) and
/// raises a `sweep-forged-results` match (severity critical) for rows that
/// are not the named agent's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrityConfig {
    /// The operators' public keys (hex, as `sweep keygen` prints) that sign
    /// the pins: the same keys agents have in `[trust] public_keys`. Empty
    /// turns checking off (with a warning at start).
    pub public_keys: Vec<String>,
    /// Which store the pins (`<prefix>identities/`) are in: `backend =
    /// "etcd"` (the default, `[integrity.etcd]`) or `"zookeeper"`
    /// (`[integrity.zookeeper]`).
    pub coordination: CoordinationSettings,
    pub etcd: EtcdSettings,
    pub zookeeper: ZooKeeperSettings,
    /// How often the pins are re-read.
    #[serde(with = "humantime_serde_compat")]
    pub refresh: Duration,
    /// How long a run's rows wait for their seal before the run is counted
    /// as unsealed.
    #[serde(with = "humantime_serde_compat")]
    pub seal_timeout: Duration,
}

impl IntegrityConfig {
    /// The store the pins are in, with its settings.
    pub fn coordination(&self) -> Coordination {
        Coordination::choose(self.coordination.backend, &self.etcd, &self.zookeeper)
    }
}

impl Default for IntegrityConfig {
    fn default() -> Self {
        Self {
            public_keys: Vec::new(),
            coordination: CoordinationSettings::default(),
            etcd: EtcdSettings::default(),
            zookeeper: ZooKeeperSettings::default(),
            refresh: Duration::from_secs(10),
            seal_timeout: Duration::from_secs(60),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            rules_dir: PathBuf::from("/etc/sweep/rules"),
            group_id: "sweep-rules".into(),
            kafka: KafkaSettings::default(),
            metrics_listen: "127.0.0.1:9466".into(),
            integrity: IntegrityConfig::default(),
            workers: 0,
            batch_records: 1000,
            state_dir: PathBuf::from("/var/lib/sweep-rules"),
        }
    }
}

impl Config {
    /// How many workers to run.
    pub fn workers(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let err = |reason: String| RulesError::Config {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        toml::from_str(&text).map_err(|e| err(e.to_string()))
    }
}
