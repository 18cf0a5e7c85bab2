//! Resolving connection settings: flag or environment variable, then the
//! config file, then the defaults (the quickstart cluster).

use std::path::PathBuf;

use serde::Deserialize;
use sweep_proto::{EtcdSettings, KafkaSettings};

use crate::cli::ConnectionArgs;
use crate::ControllerError;

/// The controller's config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub etcd: EtcdSettings,
    pub kafka: KafkaSettings,
    pub signing: SigningConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    /// The ed25519 secret key file hunts are signed with.
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub etcd: EtcdSettings,
    pub kafka: KafkaSettings,
    pub signing_key: Option<PathBuf>,
}

impl Settings {
    pub fn resolve(args: &ConnectionArgs) -> Result<Self, ControllerError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ControllerError::Config {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ControllerError::Config {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        let mut etcd = file.etcd;
        let mut kafka = file.kafka;
        if let Some(endpoints) = &args.etcd {
            etcd.endpoints = endpoints.clone();
        }
        if let Some(prefix) = &args.prefix {
            etcd.prefix = prefix.clone();
        }
        if let Some(brokers) = &args.kafka {
            kafka.brokers = brokers.clone();
        }
        kafka.add_properties(args.kafka_properties.iter().map(String::as_str))?;
        let signing_key = args.signing_key.clone().or(file.signing.key);
        Ok(Self {
            etcd,
            kafka,
            signing_key,
        })
    }
}
