//! sweep-rules' configuration file (TOML).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sweep_proto::KafkaSettings;

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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            rules_dir: PathBuf::from("/etc/sweep/rules"),
            group_id: "sweep-rules".into(),
            kafka: KafkaSettings::default(),
            metrics_listen: "127.0.0.1:9466".into(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let err = |reason: String| RulesError::Config {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        toml::from_str(&text).map_err(|e| err(e.to_string()))
    }
}
