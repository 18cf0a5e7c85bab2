//! Which hunts this agent has run, kept on disk so a restart does not run a
//! hunt twice. Entries are dropped once their hunt has expired.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::AgentError;

pub struct Ledger {
    path: PathBuf,
    /// hunt id → expiry (Unix seconds).
    ran: BTreeMap<String, u64>,
}

impl Ledger {
    pub fn open(path: &Path) -> Result<Self, AgentError> {
        let ran = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| AgentError::Config {
                path: path.display().to_string(),
                reason: format!("corrupt hunt ledger: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(AgentError::io(format!("reading {}", path.display()), e)),
        };
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
        let tmp = self.path.with_extension("tmp");
        let bytes = serde_json::to_vec(&self.ran).expect("a map of strings serializes");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| AgentError::io(format!("writing {}", self.path.display()), e))
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
