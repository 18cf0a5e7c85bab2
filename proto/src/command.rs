//! Commands the controller writes to etcd for agents to run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ProtoError;

/// Which agents a command is for. Empty `hosts` and empty `labels` mean every
/// agent; otherwise an agent must be listed (when `hosts` is set) and carry
/// every label in `labels` (when that is set). `discovery` queries, as in
/// osquery packs, narrow it further on the agent: it runs the command only
/// where every one of them returns rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discovery: Vec<String>,
}

impl Targets {
    pub fn all() -> Self {
        Self::default()
    }

    pub fn is_all(&self) -> bool {
        self.hosts.is_empty() && self.labels.is_empty() && self.discovery.is_empty()
    }

    /// Whether an agent with this id and these labels is targeted.
    pub fn matches(&self, host_id: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.hosts.is_empty() || self.hosts.iter().any(|h| h == host_id))
            && self
                .labels
                .iter()
                .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
    }

    /// Parses a label selector such as `role=web,dc=sh1`.
    pub fn parse_selector(selector: &str) -> Result<BTreeMap<String, String>, ProtoError> {
        let mut labels = BTreeMap::new();
        for part in selector.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| ProtoError::Setting {
                name: "label selector",
                reason: format!("`{part}` is not key=value"),
            })?;
            if k.trim().is_empty() {
                return Err(ProtoError::Setting {
                    name: "label selector",
                    reason: format!("`{part}` has an empty key"),
                });
            }
            labels.insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(labels)
    }
}

/// An emergency query: run once by every targeted agent while it is live.
/// Stored under `/sweep/hunts/<id>` on a lease that ends at `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hunt {
    pub id: String,
    pub sql: String,
    #[serde(default)]
    pub targets: Targets,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds; agents ignore a hunt past this even if etcd still has it.
    pub expires_at: u64,
    /// Who issued it (user@host of the operator).
    pub issuer: String,
    /// The partition of `sweep.hunts` its rows and statuses go to: the one
    /// the controller reads, from the offset it took before writing the
    /// hunt. None: the producer's choice (by host id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
}

impl Hunt {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a hunt always serializes")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, ProtoError> {
        serde_json::from_slice(bytes).map_err(|source| ProtoError::Decode {
            what: "hunt",
            source,
        })
    }

    /// The `name` result rows of this hunt carry, in osquery's result log.
    pub fn query_name(&self) -> String {
        format!("hunt:{}", self.id)
    }

    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_match_hosts_and_labels() {
        let labels: BTreeMap<String, String> = [("role".to_string(), "web".to_string())]
            .into_iter()
            .collect();
        assert!(Targets::all().matches("a", &labels));
        let t = Targets {
            hosts: vec!["a".into()],
            labels: Targets::parse_selector("role=web").unwrap(),
            discovery: vec![],
        };
        assert!(t.matches("a", &labels));
        assert!(!t.matches("b", &labels));
        let t = Targets {
            hosts: vec![],
            labels: Targets::parse_selector("role=db").unwrap(),
            discovery: vec![],
        };
        assert!(!t.matches("a", &labels));
        assert!(Targets::parse_selector("role").is_err());
    }
}
