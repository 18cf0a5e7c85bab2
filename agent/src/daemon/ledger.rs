//! Which hunts this agent has run, kept on disk so a restart does not run a
//! hunt twice. Entries are dropped once their hunt has expired.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::state_file;
use crate::error::AgentError;

pub struct Ledger {
    path: PathBuf,
    /// hunt id → expiry (Unix seconds).
    ran: BTreeMap<String, u64>,
}

impl Ledger {
    /// Opens the ledger; a corrupt one is set aside with a warning (hunts
    /// still live may then run once more, which beats not starting).
    pub fn open(path: &Path) -> Result<Self, AgentError> {
        let ran = state_file::read_or_set_aside(path, "hunt ledger")?.unwrap_or_default();
        Ok(Self {
            path: path.to_path_buf(),
            ran,
        })
    }

    pub fn has_run(&self, hunt_id: &str) -> bool {
        self.ran.contains_key(hunt_id)
    }

    /// Records a run and forgets expired hunts, then writes the file atomically.
    pub fn record(&mut self, hunt_id: &str, expires_at: u64, now: u64) -> Result<(), AgentError> {
        self.ran.retain(|_, exp| *exp > now);
        self.ran.insert(hunt_id.to_string(), expires_at);
        let bytes = serde_json::to_vec(&self.ran).expect("a map of strings serializes");
        state_file::write_atomic(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_across_reopen_and_forgets_expired() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hunts.json");
        let mut l = Ledger::open(&path).unwrap();
        l.record("a", 100, 10).unwrap();
        let mut l = Ledger::open(&path).unwrap();
        assert!(l.has_run("a"));
        l.record("b", 300, 200).unwrap();
        let l = Ledger::open(&path).unwrap();
        assert!(!l.has_run("a"));
        assert!(l.has_run("b"));
    }
}
