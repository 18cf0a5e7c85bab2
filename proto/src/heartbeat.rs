//! What an agent publishes under `/sweep/agents/<host_id>`, bound to its lease.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ProtoError;

/// The agent's own resource use at the last sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU used by the agent since the previous sample, percent of one core.
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    pub threads: u64,
    pub fds: u64,
}

/// Counters since the agent started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub hunts_run: u64,
    pub queries_failed: u64,
    pub rows_sent: u64,
    /// Records the broker refused for good, kept in the agent's quarantine.
    #[serde(default)]
    pub records_quarantined: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub host_id: String,
    pub version: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Unix seconds when the agent started.
    pub started_at: u64,
    /// Unix milliseconds when this heartbeat was written.
    pub sent_at_ms: u64,
    pub resources: Resources,
    #[serde(default)]
    pub counters: Counters,
    /// Records waiting in the on-disk spool for the broker.
    #[serde(default)]
    pub spool_depth: u64,
    /// The agent's identity public key (hex ed25519), which signs its
    /// answers; see [`crate::identity`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Why the agent is not ready (`/ready`'s reason); absent when ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl Heartbeat {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a heartbeat always serializes")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, ProtoError> {
        serde_json::from_slice(bytes).map_err(|source| ProtoError::Decode {
            what: "heartbeat",
            source,
        })
    }
}
