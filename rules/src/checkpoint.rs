//! What sweep-rules keeps across a restart: the open suppression windows,
//! and for each partition the offset up to which every row's effects (its
//! matches delivered, its repeats counted) are in them. Rows at or below
//! that offset are skipped when the broker hands them out again (the
//! committed offset lags), so a restart neither reports a suppressed repeat
//! again nor counts it twice. Written (tmp, fsync, rename) after a batch's
//! matches are delivered and before its offsets are stored, whenever the
//! windows changed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::suppress::{SavedGroup, Suppressor};
use crate::RulesError;

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    /// Unix milliseconds when written.
    saved_at_ms: u64,
    /// `topic/partition` → offset applied.
    applied: BTreeMap<String, i64>,
    groups: Vec<SavedGroup>,
}

/// The suppressor and the offsets applied, shared by a process's workers.
pub struct Memory {
    pub suppressor: Suppressor,
    applied: BTreeMap<String, i64>,
    /// Offsets evaluated by this process (their matches may still be on
    /// their way): a partition handed from one worker to another in a
    /// rebalance is read again from its committed offset, and those rows
    /// must not be counted twice.
    evaluated: BTreeMap<String, i64>,
    path: Option<PathBuf>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn slot(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// Moves each partition's offset in `map` up to the one in `done`.
fn advance(map: &mut BTreeMap<String, i64>, done: &[(impl AsRef<str>, i32, i64)]) {
    for (topic, partition, offset) in done {
        let at = map
            .entry(slot(topic.as_ref(), *partition))
            .or_insert(*offset);
        *at = (*at).max(*offset);
    }
}

impl Memory {
    /// Reads `state_dir/checkpoint.json`; `None` keeps nothing on disk. A
    /// corrupt file is moved aside with a warning and the state starts empty.
    pub fn open(state_dir: Option<&Path>) -> Result<Self, RulesError> {
        let Some(dir) = state_dir else {
            return Ok(Self {
                suppressor: Suppressor::default(),
                applied: BTreeMap::new(),
                evaluated: BTreeMap::new(),
                path: None,
            });
        };
        std::fs::create_dir_all(dir).map_err(|e| RulesError::State {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let path = dir.join("checkpoint.json");
        let file: File = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                let aside = path.with_extension("json.corrupt");
                warn!(path = %path.display(), error = %e, aside = %aside.display(), "unreadable checkpoint; starting without it");
                let _ = std::fs::rename(&path, &aside);
                File::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(e) => {
                return Err(RulesError::State {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })
            }
        };
        let elapsed = Duration::from_millis(now_ms().saturating_sub(file.saved_at_ms));
        Ok(Self {
            suppressor: Suppressor::restore(file.groups, elapsed, Instant::now()),
            applied: file.applied,
            evaluated: BTreeMap::new(),
            path: Some(path),
        })
    }

    /// Whether this record's effects are already in the state.
    /// (Or already evaluated by this process.)
    pub fn applied(&self, topic: &str, partition: i32, offset: i64) -> bool {
        self.done_through(topic, partition)
            .is_some_and(|done| offset <= done)
    }

    /// [`applied`](Self::applied) for each of a batch's records (topic,
    /// partition, offset), the state looked up once per partition: a batch
    /// spans a few.
    pub fn applied_each<'t>(
        &self,
        records: impl IntoIterator<Item = (&'t str, i32, i64)>,
    ) -> Vec<bool> {
        let mut through: Vec<(&str, i32, Option<i64>)> = Vec::new();
        records
            .into_iter()
            .map(|(topic, partition, offset)| {
                let done = match through
                    .iter()
                    .find(|(t, p, _)| *p == partition && *t == topic)
                {
                    Some(&(_, _, done)) => done,
                    None => {
                        let done = self.done_through(topic, partition);
                        through.push((topic, partition, done));
                        done
                    }
                };
                done.is_some_and(|done| offset <= done)
            })
            .collect()
    }

    /// The last offset of a partition applied before a restart or evaluated
    /// by this process.
    fn done_through(&self, topic: &str, partition: i32) -> Option<i64> {
        let slot = slot(topic, partition);
        [&self.applied, &self.evaluated]
            .iter()
            .filter_map(|m| m.get(&slot).copied())
            .max()
    }

    /// Records that this process evaluated every row up to these offsets.
    pub fn evaluated(&mut self, done: &[(impl AsRef<str>, i32, i64)]) {
        advance(&mut self.evaluated, done);
    }

    /// Records that every row up to these offsets is applied, and writes the
    /// state if the windows changed. Call after the rows' matches are
    /// delivered, before their offsets are stored.
    pub fn checkpoint(&mut self, done: &[(impl AsRef<str>, i32, i64)]) -> Result<(), RulesError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.suppressor.changed() {
            return Ok(());
        }
        advance(&mut self.applied, done);
        let file = File {
            saved_at_ms: now_ms(),
            applied: self.applied.clone(),
            groups: self.suppressor.save(Instant::now()),
        };
        let fail = |e: std::io::Error| RulesError::State {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(fail)?;
        f.write_all(&serde_json::to_vec(&file).expect("the checkpoint serializes"))
            .map_err(fail)?;
        f.sync_all().map_err(fail)?;
        std::fs::rename(&tmp, path).map_err(fail)?;
        if let Some(dir) = path.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sweep_proto::MatchRecord;

    use super::*;

    fn m(t: u64) -> MatchRecord {
        MatchRecord {
            rule_id: "r".into(),
            title: "t".into(),
            severity: "low".into(),
            host: "web-1".into(),
            query: "q".into(),
            hunt_id: None,
            row: [("pid".to_string(), "1".to_string())].into(),
            first_seen: t,
            last_seen: t,
            count: 1,
        }
    }

    #[test]
    fn a_restart_keeps_windows_and_applied_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let w = Duration::from_secs(3600);
        let mut mem = Memory::open(Some(dir.path())).unwrap();
        let first = mem.suppressor.admit(m(1), w, Instant::now()).unwrap();
        assert!(mem.suppressor.admit(m(2), w, Instant::now()).is_none());
        mem.suppressor.delivered(&first, &[]);
        mem.checkpoint(&[("sweep.results", 3, 41)]).unwrap();
        drop(mem);
        let mut mem = Memory::open(Some(dir.path())).unwrap();
        assert!(mem.applied("sweep.results", 3, 41));
        assert!(!mem.applied("sweep.results", 3, 42));
        assert!(!mem.applied("sweep.results", 4, 0));
        // The window is still open: a repeat is counted, not reported.
        assert!(mem.suppressor.admit(m(3), w, Instant::now()).is_none());
        // Closing it now (as if the hour had passed) gives one summary of 3.
        let closed = mem.suppressor.close(Instant::now() + w);
        assert_eq!(closed.len(), 1);
        assert_eq!(
            (closed[0].first_seen, closed[0].last_seen, closed[0].count),
            (1, 3, 3)
        );
    }

    /// Another worker writes the shared state while a report is still on
    /// its way: the state on disk leaves that group out, so a restart
    /// reports the replayed row again instead of counting it as a repeat;
    /// and a summary on its way is made again after a restart.
    #[test]
    fn only_delivered_reports_reach_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let w = Duration::from_secs(3600);
        let now = Instant::now();
        let mut mem = Memory::open(Some(dir.path())).unwrap();
        let sent = mem.suppressor.admit(m(1), w, now).unwrap();
        mem.checkpoint(&[("sweep.results", 0, 7)]).unwrap();
        drop(mem);
        let mut mem = Memory::open(Some(dir.path())).unwrap();
        let again = mem.suppressor.admit(m(1), w, now);
        assert_eq!(again.as_ref(), Some(&sent), "undelivered: reported again");
        mem.suppressor.delivered(&sent, &[]);
        assert!(mem.suppressor.admit(m(2), w, now).is_none());
        // The window closes; its summary is on its way when the state is
        // written, and lost with the process.
        let summary = mem.suppressor.close(now + w);
        assert_eq!(summary.len(), 1);
        mem.checkpoint(&[("sweep.results", 0, 8)]).unwrap();
        drop(mem);
        let mut mem = Memory::open(Some(dir.path())).unwrap();
        assert_eq!(mem.suppressor.close(Instant::now()), summary, "made again");
        mem.suppressor.delivered(&summary[0], &[]);
        mem.checkpoint(&[("sweep.results", 0, 9)]).unwrap();
        drop(mem);
        let mut mem = Memory::open(Some(dir.path())).unwrap();
        assert!(
            mem.suppressor.close(Instant::now()).is_empty(),
            "delivered once"
        );
    }

    #[test]
    fn a_corrupt_checkpoint_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("checkpoint.json"), b"{not json").unwrap();
        let mem = Memory::open(Some(dir.path())).unwrap();
        assert!(!mem.applied("sweep.results", 0, 0));
        assert!(dir.path().join("checkpoint.json.corrupt").exists());
    }
}
