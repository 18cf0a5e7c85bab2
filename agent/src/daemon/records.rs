//! Turning answers into Kafka records: result rows in osquery's result-log
//! form (with this host's id and decorations), hunt status records and
//! scheduled runs' seals, each keyed by the host id so one host's records
//! stay in order. Statuses and seals are signed with the agent's identity
//! key over a digest of the rows before them.

use std::collections::BTreeMap;
use std::sync::Arc;

use sweep_proto::identity::{AgentKey, RowDigest};
use sweep_proto::record::{Seal, StatusBody};
use sweep_proto::time::calendar_time;
use sweep_proto::topics;
use sweep_proto::{HuntStatus, ResultRow, RunSeal};

use super::spool::Record;
use crate::engine::cut_text;

/// The largest record value the agent writes: under the 1 MB a broker takes
/// by default (`message.max.bytes`), with room for the key and headers.
pub const MAX_RECORD_BYTES: usize = 900 * 1024;

/// What a result row says besides its columns.
pub struct RowMeta<'a> {
    pub name: &'a str,
    pub action: &'a str,
    pub hunt_id: Option<&'a str>,
    /// The row's number in this host's answer or run.
    pub seq: Option<u64>,
    /// The `sweep.hunts` partition a hunt's rows go to (the hunt says).
    pub partition: Option<i32>,
    pub epoch: u64,
    pub counter: u64,
    pub now: u64,
}

#[derive(Clone)]
pub struct Records {
    host_id: String,
    /// Added to every result row, as osquery's decorators do.
    decorations: BTreeMap<String, String>,
    /// Signs statuses and run seals.
    identity: Arc<AgentKey>,
}

impl Records {
    pub fn new(host_id: String, labels: &BTreeMap<String, String>, identity: AgentKey) -> Self {
        let mut decorations = labels.clone();
        decorations.insert("host_id".into(), host_id.clone());
        Self {
            host_id,
            decorations,
            identity: Arc::new(identity),
        }
    }

    /// The identity public key, for the heartbeat.
    pub fn identity(&self) -> String {
        self.identity.public_hex()
    }

    /// One result row for `sweep.results`. A row too large for one record
    /// (many long values) has its longest values cut, with a marker, until
    /// it fits: the row is answered, never dropped for its size.
    pub fn row(&self, meta: RowMeta<'_>, mut columns: BTreeMap<String, String>) -> Record {
        loop {
            let record = self.row_record(&meta, columns.clone());
            if record.value.len() <= MAX_RECORD_BYTES {
                return record;
            }
            let excess = record.value.len() - MAX_RECORD_BYTES;
            let Some(longest) = columns
                .values_mut()
                .max_by_key(|v| v.len())
                .filter(|v| v.len() > 64)
            else {
                // Nothing left worth cutting; the sink quarantines it.
                return record;
            };
            // Cut the longest value by the excess (at least half of it).
            let keep = longest
                .len()
                .saturating_sub(excess.max(longest.len() / 2) + 32);
            cut_text(longest, keep);
        }
    }

    fn row_record(&self, meta: &RowMeta<'_>, columns: BTreeMap<String, String>) -> Record {
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
            seq: meta.seq,
        };
        Record {
            key: self.host_id.clone(),
            value: serde_json::to_string(&row).expect("rows serialize"),
            // A hunt's answer goes where its controller reads; scheduled
            // rows to the sink's topic, sweep.results.
            topic: meta.hunt_id.map(|_| topics::HUNTS.to_string()),
            partition: meta.partition,
        }
    }

    /// This host's status for one hunt, after its rows (whose digest is
    /// `rows`) or instead of them; signed.
    pub fn status(
        &self,
        hunt_id: &str,
        partition: Option<i32>,
        unix_time: u64,
        status: StatusBody,
        rows: &RowDigest,
    ) -> Record {
        let mut status = HuntStatus {
            hunt_id: hunt_id.to_string(),
            host_identifier: self.host_id.clone(),
            unix_time,
            status,
            seal: None,
        };
        self.identity.seal_status(&mut status, rows);
        Record {
            key: self.host_id.clone(),
            value: serde_json::to_string(&status).expect("status serializes"),
            topic: Some(topics::HUNTS.to_string()),
            partition,
        }
    }

    /// The signed seal after one scheduled run's rows.
    pub fn run_seal(
        &self,
        name: &str,
        now: u64,
        epoch: u64,
        counter: u64,
        rows: &RowDigest,
    ) -> Record {
        let mut run = RunSeal {
            name: name.to_string(),
            host_identifier: self.host_id.clone(),
            unix_time: now,
            epoch,
            counter,
            rows: rows.rows(),
            action: "seal".into(),
            seal: Seal {
                row_digest: String::new(),
                signature: String::new(),
            },
        };
        self.identity.seal_run(&mut run, rows);
        Record {
            key: self.host_id.clone(),
            value: serde_json::to_string(&run).expect("a run seal serializes"),
            topic: None,
            partition: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_too_large_for_one_record_is_cut_to_fit() {
        let records = Records::new("h".into(), &BTreeMap::new(), AgentKey::ephemeral([1; 32]));
        let meta = || RowMeta {
            name: "q",
            action: "snapshot",
            hunt_id: None,
            seq: None,
            partition: None,
            epoch: 0,
            counter: 0,
            now: 0,
        };
        let columns: BTreeMap<String, String> = (0..20)
            .map(|i| (format!("c{i}"), "é".repeat(40_000)))
            .collect();
        let record = records.row(meta(), columns);
        assert!(
            record.value.len() <= MAX_RECORD_BYTES,
            "{}",
            record.value.len()
        );
        let row: ResultRow = serde_json::from_str(&record.value).unwrap();
        assert_eq!(row.columns.len(), 20);
        assert!(row.columns.values().any(|v| v.ends_with("bytes cut]")));
        let small: BTreeMap<String, String> = [("a".to_string(), "b".to_string())].into();
        let row: ResultRow =
            serde_json::from_str(&records.row(meta(), small.clone()).value).unwrap();
        assert_eq!(row.columns, small);
    }
}
