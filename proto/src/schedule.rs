//! Scheduled work written to etcd: single scheduled queries under
//! `/sweep/schedule/<name>` and osquery-format packs under `/sweep/packs/<pack>`.
//! Agents run them on their intervals and log rows in osquery's result-log
//! form: `snapshot` rows, or `added`/`removed` rows for differential queries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ProtoError, Targets};

fn yes() -> bool {
    true
}

/// One scheduled query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledQuery {
    /// The name rows carry in `name`.
    pub name: String,
    pub sql: String,
    /// Seconds between runs.
    pub interval: u64,
    /// Log every row each run (`snapshot`) instead of the differences.
    #[serde(default)]
    pub snapshot: bool,
    /// In differential mode, also log rows that disappeared.
    #[serde(default = "yes")]
    pub removed: bool,
    #[serde(default)]
    pub targets: Targets,
    /// osquery's platform filter (`linux`, `posix`, `all`, …); absent = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub issuer: String,
    /// Unix seconds when the controller wrote it.
    pub issued_at: u64,
    /// Grows with every write of this name (the controller takes the larger
    /// of the time in milliseconds and the last version plus one); an agent
    /// never goes back to a lower one, so a replayed old version, or a
    /// deleted command put back, is refused.
    pub version: u64,
}

/// One query of a pack, in osquery's pack format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackQuery {
    pub query: String,
    pub interval: u64,
    #[serde(default)]
    pub snapshot: bool,
    #[serde(default = "yes")]
    pub removed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// An osquery-format pack: queries that run only where every discovery query
/// returns rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pack {
    pub name: String,
    #[serde(default)]
    pub discovery: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default)]
    pub targets: Targets,
    pub queries: BTreeMap<String, PackQuery>,
    pub issuer: String,
    /// Unix seconds when the controller wrote it.
    pub issued_at: u64,
    /// As [`ScheduledQuery::version`].
    pub version: u64,
}

impl Pack {
    /// The `name` a pack query's rows carry, as osquery logs it with its
    /// default pack delimiter.
    pub fn query_name(pack: &str, query: &str) -> String {
        format!("pack_{pack}_{query}")
    }
}

/// Whether osquery's platform string (comma-separated) includes Linux.
pub fn runs_on_linux(platform: Option<&str>) -> bool {
    match platform.map(str::trim) {
        None | Some("") => true,
        Some(list) => list
            .split(',')
            .map(|p| p.trim().to_ascii_lowercase())
            .any(|p| {
                matches!(
                    p.as_str(),
                    "linux" | "posix" | "all" | "any" | "ubuntu" | "centos"
                )
            }),
    }
}

macro_rules! json_command {
    ($t:ty, $what:literal) => {
        impl $t {
            pub fn to_json(&self) -> String {
                serde_json::to_string(self).expect("commands always serialize")
            }

            pub fn from_json(bytes: &[u8]) -> Result<Self, ProtoError> {
                serde_json::from_slice(bytes).map_err(|source| ProtoError::Decode {
                    what: $what,
                    source,
                })
            }
        }
    };
}

json_command!(ScheduledQuery, "scheduled query");
json_command!(Pack, "pack");

/// The version for a new write of a command whose last version (if any) was
/// `previous`: later than that, and than any earlier write's clock.
pub fn next_version(previous: Option<u64>, now_ms: u64) -> u64 {
    previous.map_or(now_ms, |p| now_ms.max(p + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_follow_osquery() {
        assert!(runs_on_linux(None));
        assert!(runs_on_linux(Some("posix")));
        assert!(runs_on_linux(Some("darwin, linux")));
        assert!(!runs_on_linux(Some("darwin")));
        assert!(!runs_on_linux(Some("windows")));
    }

    #[test]
    fn defaults_match_osquery() {
        let q: PackQuery =
            serde_json::from_str(r#"{"query": "SELECT 1", "interval": 60}"#).unwrap();
        assert!(!q.snapshot && q.removed);
        assert_eq!(Pack::query_name("it", "users"), "pack_it_users");
    }
}
