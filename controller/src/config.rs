//! Resolving connection settings: flag or environment variable, then the
//! config file, then the defaults (the quickstart cluster).

use std::path::PathBuf;

use serde::Deserialize;
use sweep_proto::{
    Backend, Coordination, CoordinationSettings, EtcdSettings, KafkaSettings, Keyspace, Store,
    ZooKeeperSettings,
};

use crate::cli::ConnectionArgs;
use crate::ControllerError;

/// The controller's config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// `backend = "etcd"` (the default) or `"zookeeper"`.
    pub coordination: CoordinationSettings,
    pub etcd: EtcdSettings,
    pub zookeeper: ZooKeeperSettings,
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
    /// The coordination store (etcd or ZooKeeper) and its settings.
    pub coordination: Coordination,
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
        let mut zookeeper = file.zookeeper;
        let mut kafka = file.kafka;
        // An explicit --coordination wins; else the one store whose
        // endpoints were given; else the file's choice.
        let backend = match (args.coordination, &args.etcd, &args.zookeeper) {
            (Some(b), _, _) => b,
            (None, None, Some(_)) => Backend::ZooKeeper,
            (None, Some(_), None) => Backend::Etcd,
            _ => file.coordination.backend,
        };
        if let Some(endpoints) = &args.etcd {
            etcd.endpoints = endpoints.clone();
        }
        if let Some(endpoints) = &args.zookeeper {
            zookeeper.endpoints = endpoints.clone();
        }
        if let Some(prefix) = &args.prefix {
            etcd.prefix = prefix.clone();
            zookeeper.prefix = prefix.clone();
        }
        if let Some(brokers) = &args.kafka {
            kafka.brokers = brokers.clone();
        }
        kafka.add_properties(args.kafka_properties.iter().map(String::as_str))?;
        let signing_key = args.signing_key.clone().or(file.signing.key);
        Ok(Self {
            coordination: Coordination::choose(backend, &etcd, &zookeeper),
            kafka,
            signing_key,
        })
    }
}

impl Settings {
    /// The keyspace of the store in use.
    pub fn keyspace(&self) -> Keyspace {
        self.coordination.keyspace()
    }

    /// Connects to the store in use.
    pub async fn store(&self) -> Result<Store, ControllerError> {
        Ok(Store::connect(&self.coordination, None).await?)
    }
}
