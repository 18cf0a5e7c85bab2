//! Telling agents' rows from anyone else's on `sweep.results`.
//!
//! An agent numbers the rows of each scheduled run (`seq` 1, 2, …) and
//! closes the run with a seal record signed by its identity key over a
//! digest of those rows ([`sweep_proto::identity`]). Here each
//! (partition, host, query) run is digested as its rows pass, and checked
//! when its seal arrives, with the key the controller pinned for the host.
//!
//! What comes of it: a verified run; a forged one (bad signature, rows that
//! differ from the signed digest, unnumbered rows), which is alerted on; or
//! one that cannot be judged (a host with no pinned key yet, a run this
//! member joined halfway after a rebalance, or whose seal never came in
//! time), which is counted and logged but not alerted on. Matches from a
//! run's rows go out as the rows pass — detection does not wait for the
//! seal — and a forged run adds its own critical match.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sweep_proto::identity::{AgentPublicKey, Forgery, RowDigest};
use sweep_proto::{HuntStatus, ResultRow, RunSeal};

/// How a run, or a row outside any run, was judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Verified {
        rows: u64,
    },
    Forged {
        host: String,
        query: String,
        /// For the metric: `unsigned`, `bad_signature`, `rows_differ`.
        kind: &'static str,
        reason: String,
    },
    /// Not judged, and why (`unpinned`, `partial`, `unsealed`,
    /// `orphan_seal`).
    Unverifiable {
        host: String,
        query: String,
        reason: &'static str,
    },
}

/// Pinned keys by host id.
pub type Keys = HashMap<String, AgentPublicKey>;

struct Run {
    unix_time: u64,
    last: u64,
    digest: RowDigest,
    /// Rows out of order or from another run time: no seal can match.
    broken: bool,
    /// The first row this member saw was not row 1.
    partial: bool,
    started: Instant,
}

/// Open runs, by (partition, host, query name).
pub struct Runs {
    open: HashMap<(i32, String, String), Run>,
    seal_timeout: Duration,
}

impl Runs {
    pub fn new(seal_timeout: Duration) -> Self {
        Self {
            open: HashMap::new(),
            seal_timeout,
        }
    }

    /// Takes one row (`payload` its exact bytes): a scheduled run's, or a
    /// hunt's (its run is the hunt, closed by the host's signed status).
    pub fn row(
        &mut self,
        partition: i32,
        row: &ResultRow,
        payload: &[u8],
        now: Instant,
    ) -> Option<Verdict> {
        let run = RowRun {
            host: &row.host_identifier,
            query: &row.name,
            seq: row.seq,
            unix_time: row.unix_time,
        };
        self.row_of(partition, run, payload, now)
    }

    /// [`row`](Self::row), for a row read without decoding it whole.
    pub fn row_of(
        &mut self,
        partition: i32,
        row: RowRun<'_>,
        payload: &[u8],
        now: Instant,
    ) -> Option<Verdict> {
        let Some(seq) = row.seq else {
            return Some(Verdict::Forged {
                host: row.host.to_string(),
                query: row.query.to_string(),
                kind: kind(&Forgery::Unsigned),
                reason: format!("{} (an unnumbered row)", Forgery::Unsigned),
            });
        };
        let key = (partition, row.host.to_string(), row.query.to_string());
        let mut verdict = None;
        if seq == 1 {
            // A new run; one still open was never sealed.
            if self.open.remove(&key).is_some() {
                verdict = Some(unsealed(&key));
            }
        }
        let run = self.open.entry(key).or_insert_with(|| Run {
            unix_time: row.unix_time,
            last: seq - 1,
            digest: RowDigest::new(),
            broken: false,
            partial: seq != 1,
            started: now,
        });
        if seq == run.last + 1 && row.unix_time == run.unix_time {
            run.digest.add(payload);
            run.last = seq;
        } else if seq > run.last || row.unix_time != run.unix_time {
            run.broken = true;
        }
        // A lower number is a redelivery (at-least-once): already digested.
        verdict
    }

    /// Judges the scheduled run `seal` closes.
    pub fn seal(&mut self, partition: i32, seal: &RunSeal, keys: &Keys) -> Verdict {
        let closing = Closing {
            host: &seal.host_identifier,
            query: &seal.name,
            rows: seal.rows,
            unix_time: Some(seal.unix_time),
        };
        self.close(partition, closing, keys, |public, digest| {
            public.verify_run(seal, digest)
        })
        .unwrap_or_else(|| Verdict::Unverifiable {
            host: seal.host_identifier.clone(),
            query: seal.name.clone(),
            // Its rows went by before this member held the partition, or the
            // seal is a redelivery of one already judged.
            reason: "orphan_seal",
        })
    }

    /// Judges the hunt rows a host's status closes; None for a status with
    /// no rows before it (nothing here to check).
    pub fn status(&mut self, partition: i32, status: &HuntStatus, keys: &Keys) -> Option<Verdict> {
        let query = format!("hunt:{}", status.hunt_id);
        let closing = Closing {
            host: &status.host_identifier,
            query: &query,
            rows: status.status.rows,
            unix_time: None,
        };
        self.close(partition, closing, keys, |public, digest| {
            public.verify_status(status, digest)
        })
    }

    fn close(
        &mut self,
        partition: i32,
        c: Closing<'_>,
        keys: &Keys,
        verify: impl FnOnce(&AgentPublicKey, &RowDigest) -> Result<(), Forgery>,
    ) -> Option<Verdict> {
        let key = (partition, c.host.to_string(), c.query.to_string());
        let run = self.open.remove(&key)?;
        let forged = |f: Forgery, reason: String| Verdict::Forged {
            host: c.host.to_string(),
            query: c.query.to_string(),
            kind: kind(&f),
            reason,
        };
        if run.partial {
            return Some(Verdict::Unverifiable {
                host: c.host.to_string(),
                query: c.query.to_string(),
                reason: "partial",
            });
        }
        let Some(public) = keys.get(c.host) else {
            // Nothing to check against yet: the controller pins a host on
            // first sight, and the pin may not have been read here yet.
            return Some(Verdict::Unverifiable {
                host: c.host.to_string(),
                query: c.query.to_string(),
                reason: "unpinned",
            });
        };
        if run.broken || c.unix_time.is_some_and(|t| t != run.unix_time) {
            return Some(forged(Forgery::RowsDiffer, Forgery::RowsDiffer.to_string()));
        }
        Some(match verify(public, &run.digest) {
            Ok(()) => Verdict::Verified { rows: c.rows },
            Err(Forgery::RowsDiffer) => forged(
                Forgery::RowsDiffer,
                format!(
                    "{} (signed for {} row(s), {} received)",
                    Forgery::RowsDiffer,
                    c.rows,
                    run.digest.rows()
                ),
            ),
            Err(f) => forged(f.clone(), f.to_string()),
        })
    }

    /// Runs whose seal has not come within the timeout.
    pub fn expire(&mut self, now: Instant) -> Vec<Verdict> {
        let timeout = self.seal_timeout;
        let late: Vec<_> = self
            .open
            .iter()
            .filter(|(_, r)| now.duration_since(r.started) > timeout)
            .map(|(k, _)| k.clone())
            .collect();
        late.into_iter()
            .filter_map(|k| self.open.remove(&k).map(|_| unsealed(&k)))
            .collect()
    }

    /// Open runs (for the gauge).
    pub fn open(&self) -> usize {
        self.open.len()
    }
}

/// What places a row in its run.
#[derive(Debug, Clone, Copy)]
pub struct RowRun<'a> {
    pub host: &'a str,
    pub query: &'a str,
    pub seq: Option<u64>,
    pub unix_time: u64,
}

/// What closes a run: a scheduled run's seal or a hunt status.
struct Closing<'a> {
    host: &'a str,
    query: &'a str,
    rows: u64,
    /// The run's time, which a seal repeats (a status has its own).
    unix_time: Option<u64>,
}

fn kind(f: &Forgery) -> &'static str {
    match f {
        Forgery::Unsigned => "unsigned",
        Forgery::UnknownHost => "unknown_host",
        Forgery::BadSignature => "bad_signature",
        Forgery::RowsDiffer => "rows_differ",
    }
}

/// A run that ended without its seal: a forger's rows look like this, but
/// so does an agent that died mid-run, so it is counted, not alerted on.
fn unsealed(key: &(i32, String, String)) -> Verdict {
    Verdict::Unverifiable {
        host: key.1.clone(),
        query: key.2.clone(),
        reason: "unsealed",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sweep_proto::identity::AgentKey;
    use sweep_proto::record::Seal;

    use super::*;

    fn row(seq: Option<u64>, value: &str) -> (ResultRow, Vec<u8>) {
        let row = ResultRow {
            name: "procs".into(),
            host_identifier: "web-1".into(),
            calendar_time: String::new(),
            unix_time: 100,
            epoch: 0,
            counter: 0,
            decorations: BTreeMap::new(),
            columns: [("name".to_string(), value.to_string())].into(),
            action: "snapshot".into(),
            hunt_id: None,
            seq,
        };
        let bytes = serde_json::to_vec(&row).unwrap();
        (row, bytes)
    }

    fn seal(key: &AgentKey, rows: &[&[u8]]) -> RunSeal {
        let mut digest = RowDigest::new();
        for r in rows {
            digest.add(r);
        }
        let mut s = RunSeal {
            name: "procs".into(),
            host_identifier: "web-1".into(),
            unix_time: 100,
            epoch: 0,
            counter: 0,
            rows: rows.len() as u64,
            action: "seal".into(),
            seal: Seal {
                row_digest: String::new(),
                signature: String::new(),
            },
        };
        key.seal_run(&mut s, &digest);
        s
    }

    fn keys(key: &AgentKey) -> Keys {
        [(
            "web-1".to_string(),
            AgentPublicKey::parse(&key.public_hex()).unwrap(),
        )]
        .into()
    }

    #[test]
    fn an_agents_run_verifies_and_a_forged_one_does_not() {
        let key = AgentKey::ephemeral([3; 32]);
        let now = Instant::now();
        let (r1, b1) = row(Some(1), "bash");
        let (r2, b2) = row(Some(2), "sshd");
        let mut runs = Runs::new(Duration::from_secs(60));
        for (r, b) in [(&r1, &b1), (&r2, &b2), (&r2, &b2)] {
            assert_eq!(runs.row(0, r, b, now), None);
        }
        let good = seal(&key, &[&b1, &b2]);
        assert_eq!(
            runs.seal(0, &good, &keys(&key)),
            Verdict::Verified { rows: 2 }
        );
        // A fake row in the same run.
        let (fake, fb) = row(Some(2), "nc -e /bin/sh");
        runs.row(0, &r1, &b1, now);
        runs.row(0, &fake, &fb, now);
        runs.row(0, &r2, &b2, now);
        assert!(matches!(
            runs.seal(0, &good, &keys(&key)),
            Verdict::Forged { reason, .. } if reason.contains("do not match")
        ));
        // A seal by another key, and a host nobody pinned.
        runs.row(0, &r1, &b1, now);
        let forged = seal(&AgentKey::ephemeral([4; 32]), &[&b1]);
        assert!(matches!(
            runs.seal(0, &forged, &keys(&key)),
            Verdict::Forged { reason, .. } if reason.contains("does not verify")
        ));
        runs.row(0, &r1, &b1, now);
        assert!(matches!(
            runs.seal(0, &seal(&key, &[&b1]), &Keys::new()),
            Verdict::Unverifiable {
                reason: "unpinned",
                ..
            }
        ));
        // Unnumbered rows are nobody's.
        let (bare, bb) = row(None, "x");
        assert!(matches!(
            runs.row(0, &bare, &bb, now),
            Some(Verdict::Forged { .. })
        ));
    }

    #[test]
    fn runs_joined_halfway_or_never_sealed_are_not_judged() {
        let key = AgentKey::ephemeral([3; 32]);
        let now = Instant::now();
        let (_, b1) = row(Some(1), "bash");
        let (r2, b2) = row(Some(2), "sshd");
        let mut runs = Runs::new(Duration::from_secs(60));
        runs.row(0, &r2, &b2, now);
        assert!(matches!(
            runs.seal(0, &seal(&key, &[&b1, &b2]), &keys(&key)),
            Verdict::Unverifiable {
                reason: "partial",
                ..
            }
        ));
        runs.row(0, &r2, &b2, now);
        assert!(runs.expire(now + Duration::from_secs(30)).is_empty());
        let late = runs.expire(now + Duration::from_secs(61));
        assert_eq!(late.len(), 1);
        assert_eq!(runs.open(), 0);
    }
}
