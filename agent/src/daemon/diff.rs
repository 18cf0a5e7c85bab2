//! Differential results: what each differential scheduled query returned last
//! time, kept on disk so a restart does not report every row as added again.
//! Rows are compared as multisets of their canonical JSON.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::state_file;
use crate::error::AgentError;

type Row = BTreeMap<String, String>;

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// Hash of the SQL: a changed query starts a new epoch.
    fingerprint: String,
    epoch: u64,
    counter: u64,
    rows: Vec<String>,
}

/// What changed since the last run.
#[derive(Debug, Default, PartialEq)]
pub struct Diff {
    pub epoch: u64,
    pub counter: u64,
    pub added: Vec<Row>,
    pub removed: Vec<Row>,
    /// The state to remember once the records are safe ([`DiffStore::commit`]).
    next: Option<Saved>,
}

pub struct DiffStore {
    dir: PathBuf,
}

fn hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

impl DiffStore {
    pub fn open(dir: &Path) -> Result<Self, AgentError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| AgentError::io(format!("creating {}", dir.display()), e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        // Names are operator-chosen: keep a readable part, and a hash so two
        // names that sanitize alike stay apart.
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        self.dir.join(format!("{safe}-{}.json", hash(name)))
    }

    /// Compares `rows` with the previous run of `name` and remembers them.
    pub fn diff(&self, name: &str, sql: &str, rows: Vec<Row>) -> Result<Diff, AgentError> {
        let path = self.path(name);
        let fingerprint = hash(sql);
        let saved: Saved =
            state_file::read_or_set_aside(&path, "differential state")?.unwrap_or_default();
        let (epoch, counter, previous) = if saved.fingerprint == fingerprint {
            (saved.epoch, saved.counter + 1, saved.rows)
        } else if saved.fingerprint.is_empty() {
            (0, 0, Vec::new())
        } else {
            (saved.epoch + 1, 0, Vec::new())
        };
        let current: Vec<String> = rows
            .iter()
            .map(|r| serde_json::to_string(r).expect("rows serialize"))
            .collect();
        let mut balance: HashMap<&str, i64> = HashMap::new();
        for r in &previous {
            *balance.entry(r).or_default() -= 1;
        }
        for r in &current {
            *balance.entry(r).or_default() += 1;
        }
        let mut diff = Diff {
            epoch,
            counter,
            ..Diff::default()
        };
        for (text, n) in &balance {
            let row: Row = serde_json::from_str(text).unwrap_or_default();
            for _ in 0..n.unsigned_abs() {
                if *n > 0 {
                    diff.added.push(row.clone());
                } else {
                    diff.removed.push(row.clone());
                }
            }
        }
        diff.added.sort();
        diff.removed.sort();
        diff.next = Some(Saved {
            fingerprint,
            epoch,
            counter,
            rows: current,
        });
        Ok(diff)
    }

    /// Remembers this run's rows as the state the next run compares with.
    /// Called only once the diff's records are spooled: a crash before that
    /// leaves the old state, so the next run reports the change again rather
    /// than never.
    pub fn commit(&self, name: &str, diff: &mut Diff) -> Result<(), AgentError> {
        let Some(saved) = diff.next.take() else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(&saved).expect("state serializes");
        state_file::write_atomic(&self.path(name), &bytes)
    }

    /// Drops the state of a query that was removed.
    pub fn forget(&self, name: &str) {
        let _ = std::fs::remove_file(self.path(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: &str) -> Row {
        [("v".to_string(), v.to_string())].into_iter().collect()
    }

    #[test]
    fn reports_changes_like_osquery_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiffStore::open(dir.path()).unwrap();
        let mut d = store
            .diff("q", "SELECT 1", vec![row("a"), row("b")])
            .unwrap();
        store.commit("q", &mut d).unwrap();
        assert_eq!((d.epoch, d.counter), (0, 0));
        assert_eq!(d.added, vec![row("a"), row("b")]);
        let store = DiffStore::open(dir.path()).unwrap();
        let mut d = store
            .diff("q", "SELECT 1", vec![row("b"), row("c"), row("c")])
            .unwrap();
        store.commit("q", &mut d).unwrap();
        assert_eq!((d.epoch, d.counter), (0, 1));
        assert_eq!(d.added, vec![row("c"), row("c")]);
        assert_eq!(d.removed, vec![row("a")]);
        let mut d = store
            .diff("q", "SELECT 1", vec![row("b"), row("c"), row("c")])
            .unwrap();
        store.commit("q", &mut d).unwrap();
        assert!(d.added.is_empty() && d.removed.is_empty());
        // A new SQL text is a new epoch: everything is added again.
        let mut d = store.diff("q", "SELECT 2", vec![row("b")]).unwrap();
        store.commit("q", &mut d).unwrap();
        assert_eq!((d.epoch, d.counter), (1, 0));
        assert_eq!(d.added, vec![row("b")]);
        store.forget("q");
        let mut d = store.diff("q", "SELECT 2", vec![row("b")]).unwrap();
        store.commit("q", &mut d).unwrap();
        assert_eq!(d.added, vec![row("b")]);
    }

    #[test]
    fn an_uncommitted_run_is_reported_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiffStore::open(dir.path()).unwrap();
        let mut d = store.diff("q", "SELECT 1", vec![row("a")]).unwrap();
        store.commit("q", &mut d).unwrap();
        // The rows of this run never reached the spool (a crash): no commit.
        let d = store
            .diff("q", "SELECT 1", vec![row("a"), row("b")])
            .unwrap();
        assert_eq!(d.added, vec![row("b")]);
        let store = DiffStore::open(dir.path()).unwrap();
        let d = store
            .diff("q", "SELECT 1", vec![row("a"), row("b")])
            .unwrap();
        assert_eq!((d.counter, d.added.clone()), (1, vec![row("b")]));
    }
}
