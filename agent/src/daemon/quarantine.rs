//! Records the broker refuses for good (too large, not authorised, invalid)
//! are set aside here instead of blocking every record behind them: a JSON
//! line each under `state_dir/quarantine.jsonl`, with the error and the query
//! that produced the record, for an operator to inspect or replay.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::spool::Record;
use crate::error::AgentError;

/// One quarantined record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Unix seconds when it was set aside.
    pub at: u64,
    pub error: String,
    /// The query name the record carried, if any.
    pub query: String,
    pub record: Record,
}

pub struct Quarantine {
    path: PathBuf,
    max_bytes: u64,
    file: Mutex<Option<File>>,
}

impl Quarantine {
    pub fn new(path: &Path, max_bytes: u64) -> Self {
        Self {
            path: path.to_path_buf(),
            max_bytes,
            file: Mutex::new(None),
        }
    }

    /// Writes `entry` and syncs it. Returns false, writing nothing, when the
    /// file is full; the caller counts that as a drop.
    pub fn put(&self, entry: &Entry) -> Result<bool, AgentError> {
        let io = |e| AgentError::io(format!("writing {}", self.path.display()), e);
        let mut line = serde_json::to_string(entry).expect("entries serialize");
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if file.is_none() {
            *file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .map_err(io)?,
            );
        }
        let f = file.as_mut().expect("opened above");
        let size = f.metadata().map_err(io)?.len();
        if size + line.len() as u64 > self.max_bytes {
            return Ok(false);
        }
        f.write_all(line.as_bytes()).map_err(io)?;
        f.sync_data().map_err(io)?;
        Ok(true)
    }
}

/// The query name a result or status record carries (`name`, or the hunt
/// id), for logs.
pub fn query_name(record: &Record) -> String {
    #[derive(Deserialize)]
    struct Named {
        #[serde(default)]
        name: String,
        #[serde(default)]
        hunt_id: String,
    }
    match serde_json::from_str::<Named>(&record.value) {
        Ok(n) if !n.name.is_empty() => n.name,
        Ok(n) if !n.hunt_id.is_empty() => format!("hunt:{}", n.hunt_id),
        _ => String::new(),
    }
}
