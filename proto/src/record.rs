//! Records on Kafka. Result rows keep osquery's result-log field names so
//! pipelines written for osquery read them unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ProtoError;

/// One result row, as osquery's event-format result log writes it, plus the
/// hunt it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRow {
    /// The query's name: a schedule name, or `hunt:<id>`.
    pub name: String,
    #[serde(rename = "hostIdentifier")]
    pub host_identifier: String,
    #[serde(rename = "calendarTime")]
    pub calendar_time: String,
    #[serde(rename = "unixTime")]
    pub unix_time: u64,
    #[serde(default)]
    pub epoch: u64,
    #[serde(default)]
    pub counter: u64,
    #[serde(default)]
    pub decorations: BTreeMap<String, String>,
    /// Column values as strings, NULL as "", as osquery logs them.
    pub columns: BTreeMap<String, String>,
    /// `added`, `removed` (differential) or `snapshot`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hunt_id: Option<String>,
    /// A row's number in its host's answer to a hunt, or in one scheduled
    /// run (1, 2, …): delivery is at-least-once, and a row sent twice after
    /// a broker outage is known by it and counted once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// How one agent's run of one hunt ended; exactly one per agent per hunt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HuntStatus {
    pub hunt_id: String,
    #[serde(rename = "hostIdentifier")]
    pub host_identifier: String,
    #[serde(rename = "unixTime")]
    pub unix_time: u64,
    pub status: StatusBody,
    /// The agent's signature over this status and the digest of its rows
    /// ([`crate::identity`]); absent from agents without an identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<Seal>,
}

/// An agent's signature over an answer and the rows sent for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    /// Hex SHA-256 over the SHA-256 of each row record, in order.
    pub row_digest: String,
    /// Hex ed25519 signature by the agent's identity key.
    pub signature: String,
}

/// The record that closes one scheduled run's rows on `sweep.results`
/// (`"action": "seal"`): how many rows the run sent, their digest, signed.
/// Pipelines that read only rows skip it by its action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSeal {
    /// The scheduled query's name.
    pub name: String,
    #[serde(rename = "hostIdentifier")]
    pub host_identifier: String,
    /// The run's time, as its rows carry it.
    #[serde(rename = "unixTime")]
    pub unix_time: u64,
    #[serde(default)]
    pub epoch: u64,
    #[serde(default)]
    pub counter: u64,
    /// Rows the run sent, numbered 1..=rows by their `seq`.
    pub rows: u64,
    /// Always `seal`.
    pub action: String,
    pub seal: Seal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusBody {
    /// Rows sent for the hunt.
    pub rows: u64,
    /// Why the query failed or was cut short; absent on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
    /// Column names in the query's order (rows carry them as a map).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Why the agent did not run the hunt although targeted (a discovery
    /// query returned no rows); absent when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// Anything on `sweep.results`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResultsRecord {
    // Status first: it is the variant with the required `status` field, so a
    // row never decodes as one; a run seal has `seal` and no `columns`.
    Status(HuntStatus),
    Run(RunSeal),
    Row(ResultRow),
}

impl ResultsRecord {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ProtoError> {
        serde_json::from_slice(bytes).map_err(|source| ProtoError::Decode {
            what: "result record",
            source,
        })
    }

    pub fn hunt_id(&self) -> Option<&str> {
        match self {
            Self::Status(s) => Some(&s.hunt_id),
            Self::Run(_) => None,
            Self::Row(r) => r.hunt_id.as_deref(),
        }
    }
}

/// One rule match on `sweep.matches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchRecord {
    pub rule_id: String,
    pub title: String,
    pub severity: String,
    pub host: String,
    /// The query whose row matched.
    pub query: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hunt_id: Option<String>,
    pub row: BTreeMap<String, String>,
    /// Unix seconds of the first and last row that matched in this group.
    pub first_seen: u64,
    pub last_seen: u64,
    pub count: u64,
}

impl MatchRecord {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ProtoError> {
        serde_json::from_slice(bytes).map_err(|source| ProtoError::Decode {
            what: "match",
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_rows_are_told_apart() {
        let status = HuntStatus {
            hunt_id: "h".into(),
            host_identifier: "a".into(),
            unix_time: 1,
            status: StatusBody {
                rows: 2,
                error: None,
                duration_ms: 3,
                columns: vec![],
                skipped: None,
            },
            seal: None,
        };
        let json = serde_json::to_vec(&status).unwrap();
        assert_eq!(
            ResultsRecord::from_json(&json).unwrap(),
            ResultsRecord::Status(status)
        );
        let row = ResultRow {
            name: "hunt:h".into(),
            host_identifier: "a".into(),
            calendar_time: String::new(),
            unix_time: 1,
            epoch: 0,
            counter: 0,
            decorations: BTreeMap::new(),
            columns: [("pid".to_string(), "1".to_string())].into_iter().collect(),
            action: "snapshot".into(),
            hunt_id: Some("h".into()),
            seq: Some(1),
        };
        let json = serde_json::to_string(&row).unwrap();
        assert!(json.contains("\"hostIdentifier\":\"a\""));
        assert_eq!(
            ResultsRecord::from_json(json.as_bytes()).unwrap(),
            ResultsRecord::Row(row)
        );
    }
}
