//! Connection settings for etcd and Kafka, shared by every binary so that one
//! TOML section means the same thing everywhere. The defaults reach the
//! quickstart cluster (`ops/quickstart`).

use std::collections::BTreeMap;
use std::time::Duration;

use std::path::PathBuf;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::keys::{Keyspace, DEFAULT_PREFIX};
use crate::ProtoError;

/// The quickstart's etcd client URL.
pub const DEFAULT_ETCD: &str = "http://127.0.0.1:12379";
/// The quickstart's Kafka bootstrap address.
pub const DEFAULT_KAFKA: &str = "127.0.0.1:19092";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdSettings {
    /// Client URLs of the etcd cluster.
    pub endpoints: Vec<String>,
    /// Root of sweep's keys; several installations can share one cluster.
    pub prefix: String,
    /// etcd user, when authentication is on.
    pub username: Option<String>,
    pub password: Option<String>,
    /// How long to wait for a connection, e.g. "5s".
    #[serde(with = "humantime_serde_compat")]
    pub connect_timeout: Duration,
    /// PEM file of the CA that signed etcd's certificate; turns TLS on
    /// (endpoints then use https://).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key, when etcd asks clients for one.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl Default for EtcdSettings {
    fn default() -> Self {
        Self {
            endpoints: vec![DEFAULT_ETCD.to_string()],
            prefix: DEFAULT_PREFIX.to_string(),
            username: None,
            password: None,
            connect_timeout: Duration::from_secs(5),
            ca_file: None,
            cert_file: None,
            key_file: None,
        }
    }
}

impl EtcdSettings {
    pub fn keyspace(&self) -> Keyspace {
        Keyspace::new(&self.prefix)
    }

    /// TLS options from the PEM files, when a CA is configured.
    fn tls(&self) -> Result<Option<TlsOptions>, ProtoError> {
        let read = |name: &'static str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| ProtoError::Setting {
                name,
                reason: format!("{}: {e}", path.display()),
            })
        };
        let Some(ca) = &self.ca_file else {
            if self.cert_file.is_some() || self.key_file.is_some() {
                return Err(ProtoError::Setting {
                    name: "etcd.ca_file",
                    reason: "a client certificate needs ca_file too".into(),
                });
            }
            return Ok(None);
        };
        let mut tls =
            TlsOptions::new().ca_certificate(Certificate::from_pem(read("etcd.ca_file", ca)?));
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(
                    read("etcd.cert_file", cert)?,
                    read("etcd.key_file", key)?,
                ));
            }
            (None, None) => {}
            _ => {
                return Err(ProtoError::Setting {
                    name: "etcd.cert_file",
                    reason: "cert_file and key_file go together".into(),
                })
            }
        }
        Ok(Some(tls))
    }

    /// Checks that every endpoint is an `http://host:port` or
    /// `https://host:port` URL, so a typo fails at start-up with its name
    /// instead of as an endless "unreachable".
    pub fn validate(&self) -> Result<(), ProtoError> {
        let bad = |reason: String| {
            Err(ProtoError::Setting {
                name: "etcd.endpoints",
                reason,
            })
        };
        if self.endpoints.is_empty() {
            return bad("no endpoint given".into());
        }
        for e in &self.endpoints {
            let rest = e
                .strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"));
            let Some(rest) = rest else {
                return bad(format!(
                    "`{e}` is not a URL: use http://host:port or https://host:port"
                ));
            };
            let ok = rest
                .trim_end_matches('/')
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return bad(format!("`{e}` has no host:port"));
            }
        }
        Ok(())
    }

    pub async fn connect(&self) -> Result<Client, ProtoError> {
        self.validate()?;
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(self.connect_timeout)
            .with_timeout(Duration::from_secs(10))
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5));
        if let Some(tls) = self.tls()? {
            opts = opts.with_tls(tls);
        }
        if let Some(user) = &self.username {
            // etcd forgets its auth tokens when it restarts (and drops idle
            // ones after --auth-token-ttl): log in again and retry then,
            // instead of failing with "invalid auth token" for good.
            opts = opts
                .with_user(user.clone(), self.password.clone().unwrap_or_default())
                .with_auto_token_refresh(true);
        }
        Client::connect(&self.endpoints, Some(opts))
            .await
            .map_err(|e| ProtoError::Unreachable {
                what: "etcd",
                addr: self.endpoints.join(","),
                reason: e.to_string(),
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// Extra librdkafka properties (`security.protocol`, `sasl.*`, …), passed
    /// through unchanged; they override sweep's own choices.
    pub properties: BTreeMap<String, String>,
    /// Partitions of the topics sweep creates when they are missing
    /// (existing topics are used as they are): a rules consumer group can
    /// spread over at most this many members.
    pub topic_partitions: i32,
    /// Replication factor of the topics sweep creates; -1 is the broker's
    /// `default.replication.factor`.
    pub topic_replication: i32,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: DEFAULT_KAFKA.to_string(),
            properties: BTreeMap::new(),
            topic_partitions: 12,
            topic_replication: -1,
        }
    }
}

impl KafkaSettings {
    /// A librdkafka configuration with the brokers and the extra properties.
    pub fn client_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers);
        // librdkafka logs through the rdkafka crate's `log` facade; keep it quiet
        // unless asked, the callers report errors themselves.
        cfg.set("log_level", "3");
        for (k, v) in &self.properties {
            cfg.set(k, v);
        }
        cfg
    }

    /// Parses `key=value` pairs given on a command line.
    pub fn add_properties<'a>(
        &mut self,
        pairs: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ProtoError> {
        for pair in pairs {
            let (k, v) = pair.split_once('=').ok_or_else(|| ProtoError::Setting {
                name: "kafka property",
                reason: format!("`{pair}` is not key=value"),
            })?;
            self.properties
                .insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(())
    }
}

/// Durations in TOML as humantime strings ("10s", "1m 30s").
pub mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_tls_and_sasl_settings_are_accepted() {
        // librdkafka refuses these at client creation when built without
        // OpenSSL; sweep must reach brokers that require them.
        let mut kafka = KafkaSettings::default();
        kafka
            .add_properties([
                "security.protocol=SASL_SSL",
                "sasl.mechanism=SCRAM-SHA-512",
                "sasl.username=sweep",
                "sasl.password=secret",
            ])
            .unwrap();
        let created = kafka
            .client_config()
            .create::<rdkafka::producer::BaseProducer>();
        assert!(created.is_ok(), "{:?}", created.err());
        assert!(kafka.add_properties(["no-equals-sign"]).is_err());
    }

    #[test]
    fn etcd_tls_files_must_come_in_pairs() {
        let s = EtcdSettings {
            cert_file: Some("/x.pem".into()),
            ..EtcdSettings::default()
        };
        assert!(s.tls().unwrap_err().to_string().contains("ca_file"));
        let s = EtcdSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..EtcdSettings::default()
        };
        assert!(s
            .tls()
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/ca.pem"));
    }
}
