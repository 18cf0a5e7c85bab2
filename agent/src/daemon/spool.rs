//! The disk spool: every record the agent produces is written here first, in
//! order, in segment files of JSON lines, and the sink sends it from here.
//! Writing first means a query never waits on the broker (an outage only
//! makes the spool deeper) and a record is safe from a crash as soon as
//! [`Spool::append`] returns.
//!
//! A cursor file remembers how far delivery got. Delivery is at-least-once:
//! the cursor moves only after the broker acknowledged (or the sink
//! quarantined) the records behind it, so a crash may send some records
//! twice, never zero times. A line that cannot be decoded (a torn write) is
//! skipped and counted.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::state_file;
use crate::error::AgentError;

/// Segments roll over at this size, so delivered data is deleted in chunks.
const SEGMENT_BYTES: u64 = 4 * 1024 * 1024;

/// One Kafka record: key and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub key: String,
    pub value: String,
    /// Where it goes, when not the sink's topic (hunt answers go to
    /// `sweep.hunts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The partition, when the command chose one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
}

/// A place in the spool: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// Records read from the spool, each with the position just past it.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<(Record, Position)>,
    /// Lines that could not be decoded, skipped.
    pub corrupt: u64,
    /// Where the batch ends (past corrupt lines too).
    pub end: Position,
}

struct State {
    /// Segment numbers on disk, oldest first.
    segments: VecDeque<u64>,
    writer: Option<(u64, File, u64)>,
    /// Delivered up to here.
    acked: Position,
    /// Waiting: records and bytes behind `acked`.
    records: u64,
    bytes: u64,
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
    /// Opens (or creates) the spool in `dir`, counting what an earlier run
    /// left undelivered.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, AgentError> {
        std::fs::create_dir_all(dir).map_err(|e| spool_err(dir, e))?;
        let mut segments = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| spool_err(dir, e))? {
            let entry = entry.map_err(|e| spool_err(dir, e))?;
            let name = entry.file_name();
            if let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".jsonl"))
                .and_then(|n| n.parse().ok())
            {
                segments.push(seq);
            }
        }
        segments.sort_unstable();
        let cursor: Option<Position> =
            state_file::read_or_set_aside(&dir.join("cursor.json"), "spool cursor")?;
        // A cursor into a segment that is gone (delivered and deleted) means
        // the start of the oldest one left.
        let acked = match (cursor, segments.first()) {
            (Some(c), Some(&first)) if c.segment >= first => c,
            (_, Some(&first)) => Position {
                segment: first,
                offset: 0,
            },
            (Some(c), None) => c,
            (None, None) => Position::default(),
        };
        let spool = Self {
            dir: dir.to_path_buf(),
            max_bytes,
            state: Mutex::new(State {
                segments: segments.into(),
                writer: None,
                acked,
                records: 0,
                bytes: 0,
            }),
        };
        let (records, bytes) = spool.count_from(acked)?;
        {
            let mut state = spool.lock();
            state.records = records;
            state.bytes = bytes;
        }
        Ok(spool)
    }

    fn count_from(&self, from: Position) -> Result<(u64, u64), AgentError> {
        let segments: Vec<u64> = self.lock().segments.iter().copied().collect();
        let (mut records, mut bytes) = (0, 0);
        for seq in segments.into_iter().filter(|s| *s >= from.segment) {
            let path = self.path(seq);
            let mut file = File::open(&path).map_err(|e| spool_err(&path, e))?;
            if seq == from.segment {
                file.seek(SeekFrom::Start(from.offset))
                    .map_err(|e| spool_err(&path, e))?;
            }
            for line in BufReader::new(file).split(b'\n') {
                let line = line.map_err(|e| spool_err(&path, e))?;
                records += 1;
                bytes += line.len() as u64 + 1;
            }
        }
        Ok((records, bytes))
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

    /// Appends records in order and syncs them to disk. Returns how many were
    /// dropped because the spool is full; the caller counts and logs them.
    pub fn append(&self, records: &[Record]) -> Result<u64, AgentError> {
        let mut state = self.lock();
        let mut dropped = 0;
        let mut wrote = false;
        for rec in records {
            let mut line = serde_json::to_string(rec).expect("records always serialize");
            line.push('\n');
            let len = line.len() as u64;
            if state.bytes + len > self.max_bytes {
                dropped += 1;
                continue;
            }
            let roll = match &state.writer {
                Some((_, _, size)) => *size > 0 && size + len > SEGMENT_BYTES,
                None => true,
            };
            if roll {
                // Always a new segment after the newest, also at start-up: a
                // segment an earlier run was writing may end in a torn line.
                let seq = state.segments.back().map_or(state.acked.segment, |s| s + 1);
                let path = self.path(seq);
                if let Some((_, file, _)) = state.writer.take() {
                    file.sync_data().map_err(|e| spool_err(&path, e))?;
                }
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| spool_err(&path, e))?;
                let size = file.metadata().map_err(|e| spool_err(&path, e))?.len();
                if state.segments.back() != Some(&seq) {
                    state.segments.push_back(seq);
                }
                state.writer = Some((seq, file, size));
            }
            let (seq, file, size) = state.writer.as_mut().expect("writer set above");
            let seq = *seq;
            file.write_all(line.as_bytes())
                .map_err(|e| spool_err(&self.path(seq), e))?;
            *size += len;
            state.bytes += len;
            state.records += 1;
            wrote = true;
        }
        if wrote {
            if let Some((seq, file, _)) = state.writer.as_mut() {
                // Spooled data must survive the agent's crash: that is its purpose.
                let seq = *seq;
                file.sync_data()
                    .map_err(|e| spool_err(&self.path(seq), e))?;
            }
        }
        Ok(dropped)
    }

    /// Reads up to `max_records` records (and about `max_bytes`) after
    /// `from`, moving on to newer segments as older ones end. Only whole
    /// lines are taken: a line being written is left for the next read.
    pub fn read(
        &self,
        from: Position,
        max_records: usize,
        max_bytes: u64,
    ) -> Result<Batch, AgentError> {
        let mut batch = Batch {
            end: from,
            ..Batch::default()
        };
        let mut bytes = 0u64;
        loop {
            let seq = batch.end.segment;
            let (exists, next) = {
                let state = self.lock();
                (
                    state.segments.contains(&seq),
                    state.segments.iter().copied().find(|s| *s > seq),
                )
            };
            if exists {
                // Checked before reading: once a newer segment exists this
                // one is complete, and whatever is left of it is read now.
                let complete = next.is_some();
                self.read_segment(&mut batch, complete, max_records, max_bytes, &mut bytes)?;
                if batch.records.len() >= max_records || bytes >= max_bytes || !complete {
                    return Ok(batch);
                }
            }
            match next {
                Some(next) => {
                    batch.end = Position {
                        segment: next,
                        offset: 0,
                    }
                }
                None => return Ok(batch),
            }
        }
    }

    /// Reads whole lines of `batch.end`'s segment from its offset. In a
    /// `complete` segment an unterminated last line is a torn write: it is
    /// skipped and counted.
    fn read_segment(
        &self,
        batch: &mut Batch,
        complete: bool,
        max_records: usize,
        max_bytes: u64,
        bytes: &mut u64,
    ) -> Result<(), AgentError> {
        let path = self.path(batch.end.segment);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(spool_err(&path, e)),
        };
        file.seek(SeekFrom::Start(batch.end.offset))
            .map_err(|e| spool_err(&path, e))?;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        while batch.records.len() < max_records && *bytes < max_bytes {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| spool_err(&path, e))?;
            if n == 0 {
                break;
            }
            if line.last() != Some(&b'\n') {
                if complete {
                    batch.end.offset += n as u64;
                    batch.corrupt += 1;
                }
                // Otherwise a line still being written: left for next time.
                break;
            }
            batch.end.offset += n as u64;
            *bytes += n as u64;
            match serde_json::from_slice::<Record>(&line[..n - 1]) {
                Ok(rec) => batch.records.push((rec, batch.end)),
                Err(_) => batch.corrupt += 1,
            }
        }
        Ok(())
    }

    /// Where delivery stands.
    pub fn acked(&self) -> Position {
        self.lock().acked
    }

    /// Marks everything before `to` delivered: `records` records and
    /// `bytes` bytes. Deletes segments wholly behind it and saves the cursor.
    pub fn ack(&self, to: Position, records: u64, bytes: u64) -> Result<(), AgentError> {
        let mut doomed = Vec::new();
        {
            let mut state = self.lock();
            if to <= state.acked {
                return Ok(());
            }
            state.acked = to;
            state.records = state.records.saturating_sub(records);
            state.bytes = state.bytes.saturating_sub(bytes);
            while state.segments.front().is_some_and(|s| *s < to.segment) {
                doomed.extend(state.segments.pop_front());
            }
        }
        let cursor = serde_json::to_vec(&to).expect("a position serializes");
        state_file::write_atomic(&self.dir.join("cursor.json"), &cursor)?;
        for seq in doomed {
            let path = self.path(seq);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(spool_err(&path, e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u32) -> Record {
        Record {
            key: "h".into(),
            value: format!("{{\"n\":{i}}}"),
            topic: None,
            partition: None,
        }
    }

    fn drain(spool: &Spool) -> Vec<Record> {
        let mut out = Vec::new();
        loop {
            let batch = spool.read(spool.acked(), 7, u64::MAX).unwrap();
            if batch.records.is_empty() && batch.end == spool.acked() {
                return out;
            }
            let n = batch.records.len() as u64 + batch.corrupt;
            let len: u64 = batch
                .records
                .iter()
                .map(|(r, _)| serde_json::to_string(r).unwrap().len() as u64 + 1)
                .sum();
            out.extend(batch.records.into_iter().map(|(r, _)| r));
            spool.ack(batch.end, n, len).unwrap();
        }
    }

    #[test]
    fn delivers_in_order_across_reopen_and_drops_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1024).unwrap();
        assert!(spool.is_empty());
        let first: Vec<Record> = (0..5).map(rec).collect();
        assert_eq!(spool.append(&first).unwrap(), 0);
        drop(spool);
        let spool = Spool::open(dir.path(), 1024).unwrap();
        assert_eq!(spool.depth().0, 5);
        // Read three, acknowledge them, then reopen: the rest is still there.
        let batch = spool.read(spool.acked(), 3, u64::MAX).unwrap();
        assert_eq!(batch.records.len(), 3);
        let end = batch.records[2].1;
        spool.ack(end, 3, 0).unwrap();
        spool.append(&[rec(5)]).unwrap();
        drop(spool);
        let spool = Spool::open(dir.path(), 1024).unwrap();
        assert_eq!(spool.depth().0, 3);
        assert_eq!(drain(&spool), vec![rec(3), rec(4), rec(5)]);
        assert!(spool.is_empty());
        let many: Vec<Record> = (0..100).map(rec).collect();
        let dropped = spool.append(&many).unwrap();
        assert!(dropped > 0, "a 1 KiB spool cannot hold 100 records");
        assert!(spool.depth().1 <= 1024);
    }

    #[test]
    fn segments_roll_and_are_deleted_once_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        let big = Record {
            key: "h".into(),
            value: "x".repeat(1024 * 1024),
            topic: None,
            partition: None,
        };
        for _ in 0..10 {
            spool.append(std::slice::from_ref(&big)).unwrap();
        }
        let files = || {
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "jsonl")
                .count()
        };
        assert!(files() >= 3, "10 MiB in 4 MiB segments");
        assert_eq!(drain(&spool).len(), 10);
        assert_eq!(files(), 1, "only the segment being written is kept");
        assert!(spool.is_empty());
    }

    #[test]
    fn a_torn_line_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        spool.append(&[rec(0)]).unwrap();
        drop(spool);
        // A crash mid-write left half a line, then the agent wrote more.
        let seg = dir.path().join(format!("{:020}.jsonl", 0));
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"{\"key\":\"h\",\"val\n").unwrap();
        drop(f);
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        spool.append(&[rec(1)]).unwrap();
        drop(spool);
        // And a crash that tore a line without its newline.
        let seg = dir.path().join(format!("{:020}.jsonl", 1));
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"{\"key\":\"h\",\"va").unwrap();
        drop(f);
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        spool.append(&[rec(2)]).unwrap();
        let batch = spool.read(spool.acked(), 100, u64::MAX).unwrap();
        let got: Vec<Record> = batch.records.into_iter().map(|(r, _)| r).collect();
        assert_eq!(got, vec![rec(0), rec(1), rec(2)]);
        assert_eq!(batch.corrupt, 2);
    }

    #[test]
    fn a_corrupt_cursor_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        spool.append(&[rec(0), rec(1)]).unwrap();
        drop(spool);
        std::fs::write(dir.path().join("cursor.json"), b"{\"segm").unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        assert_eq!(drain(&spool), vec![rec(0), rec(1)]);
        assert!(dir.path().join("cursor.json.corrupt").exists());
    }
}
