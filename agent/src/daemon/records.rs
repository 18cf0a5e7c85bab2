//! Turning answers into Kafka records: result rows in osquery's result-log
//! form (with this host's id and decorations) and hunt status records, each
//! keyed by the host id so one host's records stay in order.

use std::collections::BTreeMap;

use sweep_proto::record::StatusBody;
use sweep_proto::time::calendar_time;
use sweep_proto::{HuntStatus, ResultRow};

use super::spool::Record;

/// What a result row says besides its columns.
pub struct RowMeta<'a> {
    pub name: &'a str,
    pub action: &'a str,
    pub hunt_id: Option<&'a str>,
    pub epoch: u64,
    pub counter: u64,
    pub now: u64,
}

#[derive(Clone)]
pub struct Records {
    host_id: String,
    /// Added to every result row, as osquery's decorators do.
    decorations: BTreeMap<String, String>,
}

impl Records {
    pub fn new(host_id: String, labels: &BTreeMap<String, String>) -> Self {
        let mut decorations = labels.clone();
        decorations.insert("host_id".into(), host_id.clone());
        Self {
            host_id,
            decorations,
        }
    }

    /// One result row for `sweep.results`.
    pub fn row(&self, meta: RowMeta<'_>, columns: BTreeMap<String, String>) -> Record {
        let row = ResultRow {
            name: meta.name.to_string(),
            host_identifier: self.host_id.clone(),
            calendar_time: calendar_time(meta.now),
            unix_time: meta.now,
            epoch: meta.epoch,
            counter: meta.counter,
            decorations: self.decorations.clone(),
            columns,
            action: meta.action.to_string(),
            hunt_id: meta.hunt_id.map(str::to_string),
        };
        Record {
            key: self.host_id.clone(),
            value: serde_json::to_string(&row).expect("rows serialize"),
        }
    }

    /// This host's status for one hunt: after its rows, or instead of them.
    pub fn status(&self, hunt_id: &str, unix_time: u64, status: StatusBody) -> Record {
        let status = HuntStatus {
            hunt_id: hunt_id.to_string(),
            host_identifier: self.host_id.clone(),
            unix_time,
            status,
        };
        Record {
            key: self.host_id.clone(),
            value: serde_json::to_string(&status).expect("status serializes"),
        }
    }
}
