//! The disk spool: records the broker did not take wait here, in order, in
//! segment files of JSON lines, until the sink can send them.
//!
//! Delivery from the spool is at-least-once: a segment is deleted only after
//! every record in it was acknowledged, so a crash or a partial failure may
//! send some records twice, never zero times.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::AgentError;

/// Segments roll over at this size, so draining reads bounded chunks.
const SEGMENT_BYTES: u64 = 4 * 1024 * 1024;

/// One Kafka record: key and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub key: String,
    pub value: String,
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    bytes: u64,
    records: u64,
}

struct State {
    segments: VecDeque<Segment>,
    writer: Option<(u64, File)>,
    bytes: u64,
    records: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
}

fn spool_err(path: &Path, source: std::io::Error) -> AgentError {
    AgentError::Spool {
        path: path.display().to_string(),
        source,
    }
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, counting what an earlier run left.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, AgentError> {
        std::fs::create_dir_all(dir).map_err(|e| spool_err(dir, e))?;
        let mut segments = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| spool_err(dir, e))? {
            let entry = entry.map_err(|e| spool_err(dir, e))?;
            let name = entry.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".jsonl"))
                .and_then(|n| n.parse().ok())
            else {
                continue;
            };
            let path = entry.path();
            let file = File::open(&path).map_err(|e| spool_err(&path, e))?;
            let mut records = 0;
            let mut bytes = 0;
            for line in BufReader::new(file).lines() {
                let line = line.map_err(|e| spool_err(&path, e))?;
                records += 1;
                bytes += line.len() as u64 + 1;
            }
            segments.push(Segment {
                seq,
                bytes,
                records,
            });
        }
        segments.sort_by_key(|s| s.seq);
        let bytes = segments.iter().map(|s| s.bytes).sum();
        let records = segments.iter().map(|s| s.records).sum();
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes,
            state: Mutex::new(State {
                segments: segments.into(),
                writer: None,
                bytes,
                records,
            }),
        })
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.jsonl"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves counts, not files, stale.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_empty(&self) -> bool {
        self.lock().records == 0
    }

    /// Records and bytes waiting.
    pub fn depth(&self) -> (u64, u64) {
        let s = self.lock();
        (s.records, s.bytes)
    }

    /// Appends records in order. Returns how many were dropped because the
    /// spool is full; the caller counts and logs them.
    pub fn append(&self, records: &[Record]) -> Result<u64, AgentError> {
        let mut state = self.lock();
        let mut dropped = 0;
        for rec in records {
            let mut line = serde_json::to_string(rec).expect("records always serialize");
            line.push('\n');
            let len = line.len() as u64;
            if state.bytes + len > self.max_bytes {
                dropped += 1;
                continue;
            }
            let need_new = match (&state.writer, state.segments.back()) {
                (Some((seq, _)), Some(last)) => {
                    last.seq != *seq || last.bytes + len > SEGMENT_BYTES
                }
                _ => true,
            };
            if need_new {
                let seq = state.segments.back().map_or(0, |s| s.seq + 1);
                let path = self.path(seq);
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| spool_err(&path, e))?;
                state.segments.push_back(Segment {
                    seq,
                    bytes: 0,
                    records: 0,
                });
                state.writer = Some((seq, file));
            }
            let (seq, file) = state.writer.as_mut().expect("writer set above");
            let seq = *seq;
            file.write_all(line.as_bytes())
                .map_err(|e| spool_err(&self.path(seq), e))?;
            let seg = state.segments.back_mut().expect("segment pushed above");
            seg.bytes += len;
            seg.records += 1;
            state.bytes += len;
            state.records += 1;
        }
        if let Some((seq, file)) = state.writer.as_mut() {
            // Spooled data must survive the agent's crash: that is its purpose.
            let seq = *seq;
            file.sync_data()
                .map_err(|e| spool_err(&self.path(seq), e))?;
        }
        Ok(dropped)
    }

    /// The oldest segment's records. The segment being written is sealed first
    /// so nothing is appended to it while it drains.
    pub fn oldest(&self) -> Result<Option<(u64, Vec<Record>)>, AgentError> {
        let mut state = self.lock();
        let Some(seq) = state.segments.front().map(|s| s.seq) else {
            return Ok(None);
        };
        if state.writer.as_ref().is_some_and(|(w, _)| *w == seq) {
            state.writer = None;
        }
        drop(state);
        let path = self.path(seq);
        let file = File::open(&path).map_err(|e| spool_err(&path, e))?;
        let mut records = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| spool_err(&path, e))?;
            // A torn last line from a crash mid-write is skipped, not fatal.
            if let Ok(rec) = serde_json::from_str(&line) {
                records.push(rec);
            }
        }
        Ok(Some((seq, records)))
    }

    /// Deletes a segment whose records were all delivered.
    pub fn remove(&self, seq: u64) -> Result<(), AgentError> {
        let mut state = self.lock();
        if let Some(pos) = state.segments.iter().position(|s| s.seq == seq) {
            let seg = state.segments.remove(pos).expect("position is valid");
            state.bytes -= seg.bytes;
            state.records -= seg.records;
        }
        if state.writer.as_ref().is_some_and(|(w, _)| *w == seq) {
            state.writer = None;
        }
        let path = self.path(seq);
        std::fs::remove_file(&path).map_err(|e| spool_err(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u32) -> Record {
        Record {
            key: "h".into(),
            value: format!("{{\"n\":{i}}}"),
        }
    }

    #[test]
    fn keeps_order_across_reopen_and_drops_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1024).unwrap();
        assert!(spool.is_empty());
        let first: Vec<Record> = (0..5).map(rec).collect();
        assert_eq!(spool.append(&first).unwrap(), 0);
        drop(spool);
        let spool = Spool::open(dir.path(), 1024).unwrap();
        assert_eq!(spool.depth().0, 5);
        let (seq, got) = spool.oldest().unwrap().unwrap();
        assert_eq!(got, first);
        // Appends after sealing go to a new segment, after the old one.
        spool.append(&[rec(5)]).unwrap();
        spool.remove(seq).unwrap();
        let (_, got) = spool.oldest().unwrap().unwrap();
        assert_eq!(got, vec![rec(5)]);
        let many: Vec<Record> = (0..100).map(rec).collect();
        let dropped = spool.append(&many).unwrap();
        assert!(dropped > 0, "a 1 KiB spool cannot hold 100 records");
        assert!(spool.depth().1 <= 1024);
    }
}
