//! `osquery_flags`: sweep's agent settings, reported the way osquery reports
//! its command-line flags. Each setting of the agent's configuration file
//! ([`Config`], TOML) is one flag, named by its path in the file
//! (`limits.wall_time`, `etcd.endpoints`, `host_id`): `value` is the value in
//! force (the file's, else the default), `default_value` the default, both
//! as text (durations as `30s`, lists and tables as compact JSON, an unset
//! optional value as ""). `host_id`'s value is the id in force (the hostname
//! when the file names none). Secrets are never shown: `etcd.password`,
//! `zookeeper.password` and Kafka properties that hold passwords, keys or
//! tokens read `********` when set. `shell_only` is 0: no setting is only for the shell.
//!
//! Names and values come from the configuration itself (serialised), so a
//! new setting appears here at once; types and descriptions come from
//! [`FLAGS`], which a test keeps complete. Outside the daemon (the shell,
//! `sweep-agent query`) the configuration is the default one.

use serde_json::Value as Json;

use super::{Row, ScanContext, Table, TableSchema};
use crate::config::Config;
use crate::error::AgentError;
use sweep_proto::schema::osquery_flags::TABLE as SCHEMA;

pub struct OsqueryFlags;

/// Every setting: its name, type and description.
pub const FLAGS: &[(&str, &str, &str)] = &[
    ("host_id", "string", "This host's id in the coordination store and on every result (empty: the hostname)"),
    ("labels", "map", "Labels hunts can target (role = \"web\", dc = \"sh1\")"),
    ("state_dir", "string", "Where the agent keeps state across restarts: the ledger of hunts it ran and the result spool"),
    ("coordination.backend", "string", "The coordination store: etcd or zookeeper"),
    ("etcd.endpoints", "list", "Client URLs of the etcd cluster"),
    ("etcd.prefix", "string", "Root of sweep's keys in etcd"),
    ("etcd.username", "string", "etcd user, when authentication is on"),
    ("etcd.password", "string", "etcd password, when authentication is on (not shown)"),
    ("etcd.connect_timeout", "duration", "How long to wait for a connection to etcd"),
    ("etcd.ca_file", "string", "PEM file of the CA that signed etcd's certificate; turns TLS on"),
    ("etcd.cert_file", "string", "PEM client certificate, when etcd asks clients for one"),
    ("etcd.key_file", "string", "PEM client key, when etcd asks clients for one"),
    ("zookeeper.endpoints", "list", "host:port of each ZooKeeper server"),
    ("zookeeper.chroot", "string", "The znode all of sweep's paths are under (empty: the root)"),
    ("zookeeper.prefix", "string", "Root of sweep's keys under the chroot"),
    ("zookeeper.session_timeout", "duration", "Session timeout asked for (the agent asks for its heartbeat TTL)"),
    ("zookeeper.connect_timeout", "duration", "How long to wait for a connection to one ZooKeeper server"),
    ("zookeeper.username", "string", "Digest login user, when ZooKeeper authentication is used"),
    ("zookeeper.password", "string", "Digest login password (not shown)"),
    ("zookeeper.ca_file", "string", "PEM file of the CA that signed the servers' certificates; turns TLS on"),
    ("zookeeper.cert_file", "string", "PEM client certificate, when the servers ask for one"),
    ("zookeeper.key_file", "string", "PEM client key, when the servers ask for one"),
    ("kafka.brokers", "string", "Kafka bootstrap servers, comma-separated host:port"),
    ("kafka.properties", "map", "Extra librdkafka properties, passed through unchanged (secrets not shown)"),
    ("kafka.topic_partitions", "int32", "Partitions of the topics sweep creates when they are missing"),
    ("kafka.topic_replication", "int32", "Replication factor of the topics sweep creates; -1 is the broker's default"),
    ("heartbeat.ttl", "duration", "Lease TTL (ZooKeeper: session timeout): an agent that stops heartbeating vanishes from the fleet after this"),
    ("heartbeat.report_every", "duration", "How often the heartbeat value (resources, counters) is rewritten"),
    ("limits.wall_time", "duration", "Wall time a query may take, from start to last row"),
    ("limits.max_rows", "uint64", "Rows a query may return"),
    ("limits.max_bytes", "uint64", "Bytes of result values a query may return"),
    ("limits.max_value_bytes", "uint64", "The longest a single value may be before it is cut (0: no cut)"),
    ("limits.max_memory_bytes", "uint64", "Memory one query may use (0: no limit)"),
    ("limits.denylist_for", "duration", "How long a scheduled query stopped by a limit is deny-listed"),
    ("spool.max_bytes", "uint64", "Most bytes kept on disk while the broker is away"),
    ("spool.delivery_timeout", "duration", "How long the producer retries a record before it goes to the spool"),
    ("metrics.listen", "string", "Address of the Prometheus /metrics endpoint (empty: off)"),
    ("trust.public_keys", "list", "Hex ed25519 public keys; a hunt must be signed by one of them"),
    ("trust.allow_unsigned", "bool", "Run unsigned hunts too (a lab only)"),
    ("trust.max_hunt_lifetime", "duration", "The longest a hunt may stay live"),
    ("events.enabled", "bool", "Run the event sources (process_events, socket_events, file_events)"),
    ("events.events_expiry", "duration", "How long an event is kept (osquery's events_expiry)"),
    ("events.events_max", "uint64", "Most events kept per table; past it the oldest are dropped and counted"),
    ("events.file_paths", "map", "Paths file_events watches, by category, as osquery's file_paths"),
    ("shutdown_timeout", "duration", "How long a stop (SIGTERM, SIGINT) may take"),
];

/// What a secret reads as.
const HIDDEN: &str = "********";

/// Kafka property names whose values are secrets.
const SECRET_PROPERTIES: &[&str] = &[
    "password",
    "secret",
    "token",
    "jaas",
    "oauthbearer",
    "key.pem",
];

impl Table for OsqueryFlags {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        for flag in flags(&ctx.env().config) {
            let mut row = ctx.row();
            row.set("name", flag.name)
                .set("type", flag.ty)
                .set("description", flag.description)
                .set("default_value", flag.default_value)
                .set("value", flag.value)
                .set("shell_only", 0i64);
            out.push(row);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    pub ty: String,
    pub description: String,
    pub default_value: String,
    pub value: String,
}

/// The settings of `config`, in [`FLAGS`] order, then any setting
/// [`FLAGS`] lacks (with no type or description).
pub fn flags(config: &Config) -> Vec<Flag> {
    let values = settings(config);
    let defaults = settings(&Config::default());
    let mut names: Vec<String> = FLAGS.iter().map(|(n, ..)| n.to_string()).collect();
    names.extend(
        values
            .keys()
            .filter(|n| !FLAGS.iter().any(|(f, ..)| f == n))
            .cloned(),
    );
    names
        .into_iter()
        .filter(|n| values.contains_key(n))
        .map(|name| {
            let (ty, description) = FLAGS
                .iter()
                .find(|(n, ..)| *n == name)
                .map_or(("", ""), |(_, t, d)| (*t, *d));
            let mut value = values.get(&name).cloned().unwrap_or_default();
            if name == "host_id" {
                value = config.host_id();
            }
            Flag {
                default_value: defaults.get(&name).cloned().unwrap_or_default(),
                value,
                ty: ty.to_string(),
                description: description.to_string(),
                name,
            }
        })
        .collect()
}

/// Every setting of `config` as text, by its dotted path; sections are
/// opened, settings that [`FLAGS`] names are leaves.
fn settings(config: &Config) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    if let Ok(Json::Object(top)) = serde_json::to_value(config) {
        flatten("", &top, &mut out);
    }
    out
}

fn flatten(
    prefix: &str,
    object: &serde_json::Map<String, Json>,
    out: &mut std::collections::BTreeMap<String, String>,
) {
    for (key, value) in object {
        let name = format!("{prefix}{key}");
        let known = FLAGS.iter().any(|(n, ..)| *n == name);
        match value {
            Json::Object(inner) if !known => flatten(&format!("{name}."), inner, out),
            _ => {
                let text = redacted(&name, value);
                out.insert(name, text);
            }
        }
    }
}

/// A setting's value as text, secrets hidden.
fn redacted(name: &str, value: &Json) -> String {
    match (name, value) {
        (_, Json::Null) => String::new(),
        ("etcd.password" | "zookeeper.password", _) => HIDDEN.to_string(),
        ("kafka.properties", Json::Object(props)) => {
            let shown: serde_json::Map<String, Json> = props
                .iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    if SECRET_PROPERTIES.iter().any(|s| lower.contains(s)) {
                        (k.clone(), Json::String(HIDDEN.to_string()))
                    } else {
                        (k.clone(), v.clone())
                    }
                })
                .collect();
            Json::Object(shown).to_string()
        }
        (_, Json::String(s)) => s.clone(),
        (_, Json::Bool(_) | Json::Number(_)) => value.to_string(),
        (_, Json::Array(_) | Json::Object(_)) => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use rusqlite::types::Value;

    use super::*;
    use crate::engine::{Engine, Limits};
    use crate::tables::testing::scan;
    use crate::tables::{Registry, TableEnv};

    const TOML: &str = r#"
host_id = "web-1"
state_dir = "/srv/sweep"
[labels]
role = "web"
[etcd]
endpoints = ["https://etcd-1:2379", "https://etcd-2:2379"]
username = "agent"
password = "hunter2"
ca_file = "/etc/sweep/ca.pem"
[coordination]
backend = "zookeeper"
[zookeeper]
endpoints = ["zk-1:2181"]
username = "sweep"
password = "hunter3"
[kafka]
brokers = "k1:9093"
topic_replication = 3
[kafka.properties]
"security.protocol" = "SASL_SSL"
"sasl.password" = "s3cret"
"ssl.key.pem" = "-----BEGIN PRIVATE KEY-----"
[limits]
wall_time = "10s"
max_rows = 5000
[trust]
allow_unsigned = true
"#;

    fn by_name(rows: &[Row]) -> BTreeMap<String, Vec<Value>> {
        rows.iter()
            .map(|r| match r.get("name") {
                Some(Value::Text(n)) => (n.clone(), r.values()[1..].to_vec()),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn reports_the_settings_in_force() {
        let config = Config::parse(TOML).unwrap();
        let env = TableEnv {
            config: Arc::new(config),
            ..TableEnv::default()
        };
        let rows = by_name(&scan(&OsqueryFlags, &env));
        let t = |s: &str| Value::Text(s.into());
        let check = |name: &str, ty: &str, default: &str, value: &str| {
            let row = rows.get(name).unwrap_or_else(|| panic!("no flag {name}"));
            let description = FLAGS.iter().find(|(n, ..)| *n == name).unwrap().2;
            assert_eq!(
                row,
                &vec![
                    t(ty),
                    t(description),
                    t(default),
                    t(value),
                    Value::Integer(0)
                ],
                "{name}"
            );
        };
        check("host_id", "string", "", "web-1");
        check("state_dir", "string", "/var/lib/sweep-agent", "/srv/sweep");
        check("labels", "map", "{}", r#"{"role":"web"}"#);
        check(
            "etcd.endpoints",
            "list",
            r#"["http://127.0.0.1:12379"]"#,
            r#"["https://etcd-1:2379","https://etcd-2:2379"]"#,
        );
        check("etcd.username", "string", "", "agent");
        check("etcd.password", "string", "", "********");
        check("etcd.ca_file", "string", "", "/etc/sweep/ca.pem");
        check("etcd.connect_timeout", "duration", "5s", "5s");
        check("coordination.backend", "string", "etcd", "zookeeper");
        check(
            "zookeeper.endpoints",
            "list",
            r#"["127.0.0.1:12181"]"#,
            r#"["zk-1:2181"]"#,
        );
        check("zookeeper.password", "string", "", "********");
        check("zookeeper.session_timeout", "duration", "10s", "10s");
        check("kafka.brokers", "string", "127.0.0.1:19092", "k1:9093");
        check(
            "kafka.properties",
            "map",
            "{}",
            r#"{"sasl.password":"********","security.protocol":"SASL_SSL","ssl.key.pem":"********"}"#,
        );
        check("kafka.topic_replication", "int32", "-1", "3");
        check("limits.wall_time", "duration", "30s", "10s");
        check("limits.max_rows", "uint64", "100000", "5000");
        check(
            "limits.max_memory_bytes",
            "uint64",
            "209715200",
            "209715200",
        );
        check("trust.allow_unsigned", "bool", "false", "true");
        check("shutdown_timeout", "duration", "10s", "10s");
        // No secret anywhere in the table.
        let all = format!("{rows:?}");
        for secret in ["hunter2", "s3cret", "PRIVATE KEY"] {
            assert!(!all.contains(secret), "{secret} shown");
        }
    }

    /// Every setting of the configuration file has a type and description
    /// here, and every flag here is a setting.
    #[test]
    fn flags_cover_the_whole_configuration() {
        let names: Vec<String> = settings(&Config::default()).into_keys().collect();
        let mut listed: Vec<String> = FLAGS.iter().map(|(n, ..)| n.to_string()).collect();
        listed.sort();
        assert_eq!(names, listed);
        for (name, ty, description) in FLAGS {
            assert!(!ty.is_empty() && !description.is_empty(), "{name}");
        }
        let rows = flags(&Config::default());
        assert_eq!(rows.len(), FLAGS.len());
    }

    #[test]
    fn runs_through_the_engine() {
        let env = TableEnv {
            config: Arc::new(Config::parse(TOML).unwrap()),
            ..TableEnv::default()
        };
        let engine = Engine::new(Arc::new(Registry::new(env)), Limits::default());
        let out = engine.run(
            "select name, value, default_value from osquery_flags where name like 'limits.%' and value != default_value",
        );
        assert!(out.error.is_none(), "{:?}", out.error);
        let t = |s: &str| Value::Text(s.into());
        assert_eq!(
            out.rows,
            vec![
                vec![t("limits.wall_time"), t("10s"), t("30s")],
                vec![t("limits.max_rows"), t("5000"), t("100000")],
            ]
        );
    }
}
