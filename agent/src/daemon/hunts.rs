//! Hunts: run each live hunt meant for this host once, send its rows and one
//! status record. The watcher ([`super::watch`]) re-reads `/sweep/hunts/` on
//! start, so a hunt issued while the agent was down still runs; the ledger
//! makes "once" hold across restarts.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use sweep_proto::identity::RowDigest;
use sweep_proto::record::StatusBody;

use sweep_proto::time::unix_now;
use sweep_proto::{Hunt, Keyspace};
use tracing::{info, warn};

use super::ledger::Ledger;
use super::records::RowMeta;
use super::Shared;
use crate::error::AgentError;

/// The longest hunt id an agent echoes back; the controller makes 16 hex
/// digits. A longer key is dropped unreported, so nobody can make agents
/// send megabytes by writing a long key.
const MAX_HUNT_ID: usize = 128;

/// Rejected hunt ids remembered so a re-read does not report them twice;
/// forgotten wholesale past this many.
const MAX_REJECTED: usize = 10_000;

/// Runs each hunt once: remembers what it ran (the ledger, across restarts)
/// and what it has queued.
pub struct HuntRunner {
    ledger: Ledger,
    rejected: HashSet<String>,
}

impl HuntRunner {
    pub fn new(ledger: Ledger) -> Self {
        Self {
            ledger,
            rejected: HashSet::new(),
        }
    }

    /// Takes in a hunt put under `key`: verified first (signature, id, expiry
    /// bounds), then run unless it ran already, expired, or is not for this
    /// host. A rejection is reported back under the key's id.
    pub async fn offer(&mut self, shared: &Shared, key: &str, value: &[u8]) {
        let dir = shared.config.keyspace().hunts();
        let Some(id) = Keyspace::leaf(&dir, key).filter(|id| id.len() <= MAX_HUNT_ID) else {
            shared
                .metrics
                .hunts_skipped
                .with_label_values(&["invalid"])
                .inc();
            warn!(
                key_bytes = key.len(),
                "ignoring a hunt under a malformed key"
            );
            return;
        };
        if self.ledger.has_run(id) || self.rejected.contains(id) {
            return;
        }
        let now = unix_now();
        let hunt = match shared.verifier.hunt(id, value, now) {
            Ok(hunt) => hunt,
            Err(why) => {
                shared
                    .metrics
                    .hunts_skipped
                    .with_label_values(&["untrusted"])
                    .inc();
                warn!(hunt_id = %id, error = %why, "hunt rejected");
                if self.rejected.len() >= MAX_REJECTED {
                    self.rejected.clear();
                }
                self.rejected.insert(id.to_string());
                if let Err(e) = report_not_run(
                    shared,
                    id,
                    claimed_partition(value),
                    Some(why.to_string()),
                    None,
                )
                .await
                {
                    warn!(hunt_id = %id, error = %e, "cannot report the rejection");
                }
                return;
            }
        };
        if hunt.is_expired(now) {
            shared
                .metrics
                .hunts_skipped
                .with_label_values(&["expired"])
                .inc();
            return;
        }
        if !hunt.targets.matches(&shared.host_id, &shared.config.labels) {
            shared
                .metrics
                .hunts_skipped
                .with_label_values(&["not_targeted"])
                .inc();
            // Remembered (until it expires) so a re-read does not check it
            // again.
            if let Err(e) = self.ledger.record(&hunt.id, hunt.expires_at, now) {
                warn!(hunt_id = %hunt.id, error = %e, "cannot record the hunt in the ledger");
            }
            return;
        }
        // In the ledger before it runs: a hunt that crashes the agent must
        // not run again at every start-up. It is answered once or not at all.
        if let Err(e) = self.ledger.record(&hunt.id, hunt.expires_at, now) {
            warn!(hunt_id = %hunt.id, error = %e, "cannot record the hunt in the ledger");
        }
        let result = match shared
            .queries
            .discovery_passes(&hunt.targets.discovery)
            .await
        {
            Ok(true) => run_one(shared, &hunt).await,
            Ok(false) => {
                shared
                    .metrics
                    .hunts_skipped
                    .with_label_values(&["discovery"])
                    .inc();
                info!(hunt_id = %hunt.id, "discovery returned no rows; hunt not run");
                let why = "discovery returned no rows".to_string();
                report_not_run(shared, &hunt.id, hunt.partition, None, Some(why)).await
            }
            Err(e) => report_not_run(shared, &hunt.id, hunt.partition, Some(e), None).await,
        };
        if let Err(e) = result {
            // Only a spool (disk) failure gets here.
            warn!(hunt_id = %hunt.id, error = %e, "hunt results could not be stored");
        }
    }
}

/// The partition a hunt that failed verification names, so its rejection
/// reaches the controller that wrote it. Unverified, so only a bounded
/// number is taken; a forger gains nothing by choosing it.
fn claimed_partition(value: &[u8]) -> Option<i32> {
    let env = sweep_proto::signing::Envelope::from_json(value).ok()?;
    let body: serde_json::Value = serde_json::from_str(&env.body).ok()?;
    body.get("partition")?
        .as_i64()
        .filter(|p| (0..=100_000).contains(p))
        .map(|p| p as i32)
}

/// Tells the controller this agent did not run the hunt, and why: a status
/// record with no rows and either an error (rejected, discovery failed) or
/// the reason it was skipped.
async fn report_not_run(
    shared: &Shared,
    hunt_id: &str,
    partition: Option<i32>,
    error: Option<String>,
    skipped: Option<String>,
) -> Result<(), AgentError> {
    let body = StatusBody {
        rows: 0,
        error,
        duration_ms: 0,
        columns: Vec::new(),
        skipped,
    };
    let status = shared
        .records
        .status(hunt_id, partition, unix_now(), body, &RowDigest::new());
    shared.sink.send(&[status])
}

/// Runs a verified, targeted hunt: rows stream to the spool as they come,
/// then one status record with their count, signed with their digest.
async fn run_one(shared: &Shared, hunt: &Hunt) -> Result<(), AgentError> {
    info!(hunt_id = %hunt.id, issuer = %hunt.issuer, "running hunt");
    let now = unix_now();
    let digest = Arc::new(Mutex::new(RowDigest::new()));
    let record = {
        let records = shared.records.clone();
        let name = hunt.query_name();
        let hunt_id = hunt.id.clone();
        let partition = hunt.partition;
        let digest = digest.clone();
        let mut seq = 0;
        move |columns| {
            seq += 1;
            let meta = RowMeta {
                name: &name,
                action: "snapshot",
                hunt_id: Some(&hunt_id),
                seq: Some(seq),
                partition,
                epoch: 0,
                counter: 0,
                now,
            };
            let record = records.row(meta, columns);
            digest
                .lock()
                .expect("the digest lock is never poisoned")
                .add(record.value.as_bytes());
            record
        }
    };
    let out = match shared.queries.stream("hunt", &hunt.sql, record).await {
        Ok(out) => out,
        // The query task itself failed (it panicked outside a table): the
        // controller still hears from this agent, with the reason.
        Err(e) => {
            return report_not_run(shared, &hunt.id, hunt.partition, Some(e.to_string()), None)
                .await
        }
    };
    shared.counters.hunts_run.fetch_add(1, Ordering::Relaxed);
    let body = StatusBody {
        rows: out.row_count,
        error: out.error.as_ref().map(ToString::to_string),
        duration_ms: out.elapsed.as_millis() as u64,
        columns: out.columns.clone(),
        skipped: None,
    };
    let status = {
        let digest = digest.lock().expect("the digest lock is never poisoned");
        shared
            .records
            .status(&hunt.id, hunt.partition, now, body, &digest)
    };
    shared.sink.send(&[status])?;
    shared
        .counters
        .rows_sent
        .fetch_add(out.row_count, Ordering::Relaxed);
    info!(
        hunt_id = %hunt.id,
        rows = out.row_count,
        duration_ms = out.elapsed.as_millis() as u64,
        error = out.error.as_ref().map(ToString::to_string).unwrap_or_default(),
        "hunt answered"
    );
    Ok(())
}
