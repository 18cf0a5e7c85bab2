//! Hunts: run each live hunt meant for this host once, send its rows and one
//! status record. The watcher ([`super::watch`]) re-reads `/sweep/hunts/` on
//! start, so a hunt issued while the agent was down still runs; the ledger
//! makes "once" hold across restarts.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use sweep_proto::record::StatusBody;

use sweep_proto::time::unix_now;
use sweep_proto::{Hunt, HuntStatus};
use tracing::{info, warn};

use super::ledger::Ledger;
use super::spool::Record;
use super::{RowMeta, Shared};
use crate::error::AgentError;

/// Runs each hunt once: remembers what it ran (the ledger, across restarts)
/// and what it has queued.
pub struct HuntRunner {
    ledger: Ledger,
    // Hunts seen but not yet in the ledger: a re-read of the prefix offers a
    // hunt again before its first run finished.
    seen: HashSet<String>,
}

impl HuntRunner {
    pub fn new(ledger: Ledger) -> Self {
        Self {
            ledger,
            seen: HashSet::new(),
        }
    }

    /// Decodes a hunt from etcd; None (counted, logged) when it is not one.
    pub fn decode(shared: &Shared, value: &[u8]) -> Option<Hunt> {
        match Hunt::from_json(value) {
            Ok(h) => Some(h),
            Err(e) => {
                shared
                    .metrics
                    .hunts_skipped
                    .with_label_values(&["invalid"])
                    .inc();
                warn!(error = %e, "ignoring an undecodable hunt");
                None
            }
        }
    }

    /// Runs `hunt` unless it ran already, expired, or is not for this host.
    pub async fn offer(&mut self, shared: &Shared, hunt: Hunt) {
        let now = unix_now();
        if self.ledger.has_run(&hunt.id) || !self.seen.insert(hunt.id.clone()) {
            return;
        }
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
            return;
        }
        let result = match shared.check_trust(&hunt) {
            Err(why) => {
                shared
                    .metrics
                    .hunts_skipped
                    .with_label_values(&["untrusted"])
                    .inc();
                warn!(hunt_id = %hunt.id, issuer = %hunt.issuer, error = %why, "hunt rejected");
                report_not_run(shared, &hunt, Some(why.to_string()), None).await
            }
            Ok(()) => match shared.discovery_passes(&hunt.targets.discovery).await {
                Ok(true) => run_one(shared, &hunt).await,
                Ok(false) => {
                    shared
                        .metrics
                        .hunts_skipped
                        .with_label_values(&["discovery"])
                        .inc();
                    info!(hunt_id = %hunt.id, "discovery returned no rows; hunt not run");
                    let why = "discovery returned no rows".to_string();
                    report_not_run(shared, &hunt, None, Some(why)).await
                }
                Err(e) => report_not_run(shared, &hunt, Some(e), None).await,
            },
        };
        if let Err(e) = result {
            // Results that did not reach the broker are in the spool; only a
            // spool failure gets here, and the hunt is then retried on restart.
            warn!(hunt_id = %hunt.id, error = %e, "hunt results could not be stored");
            self.seen.remove(&hunt.id);
            return;
        }
        if let Err(e) = self.ledger.record(&hunt.id, hunt.expires_at, now) {
            warn!(hunt_id = %hunt.id, error = %e, "cannot record the hunt in the ledger");
        }
    }
}

/// Tells the controller this agent did not run the hunt, and why: a status
/// record with no rows and either an error (rejected, discovery failed) or
/// the reason it was skipped.
async fn report_not_run(
    shared: &Shared,
    hunt: &Hunt,
    error: Option<String>,
    skipped: Option<String>,
) -> Result<(), AgentError> {
    let status = HuntStatus {
        hunt_id: hunt.id.clone(),
        host_identifier: shared.host_id.clone(),
        unix_time: unix_now(),
        status: StatusBody {
            rows: 0,
            error,
            duration_ms: 0,
            columns: Vec::new(),
            skipped,
        },
    };
    let record = Record {
        key: shared.host_id.clone(),
        value: serde_json::to_string(&status).expect("status serializes"),
    };
    shared.sink.send(&[record])
}

async fn run_one(shared: &Shared, hunt: &Hunt) -> Result<(), AgentError> {
    info!(hunt_id = %hunt.id, issuer = %hunt.issuer, "running hunt");
    let now = unix_now();
    let record = {
        let shared = shared.clone();
        let name = hunt.query_name();
        let hunt_id = hunt.id.clone();
        move |columns| {
            shared.result_record(
                RowMeta {
                    name: &name,
                    action: "snapshot",
                    hunt_id: Some(&hunt_id),
                    epoch: 0,
                    counter: 0,
                    now,
                },
                columns,
            )
        }
    };
    let out = match shared.run_streaming("hunt", &hunt.sql, record).await {
        Ok(out) => out,
        // The query task itself failed (it panicked outside a table): the
        // controller still hears from this agent, with the reason.
        Err(e) => return report_not_run(shared, hunt, Some(e.to_string()), None).await,
    };
    shared.counters.hunts_run.fetch_add(1, Ordering::Relaxed);
    let status = HuntStatus {
        hunt_id: hunt.id.clone(),
        host_identifier: shared.host_id.clone(),
        unix_time: now,
        status: StatusBody {
            rows: out.row_count,
            error: out.error.as_ref().map(ToString::to_string),
            duration_ms: out.elapsed.as_millis() as u64,
            columns: out.columns.clone(),
            skipped: None,
        },
    };
    shared.sink.send(&[Record {
        key: shared.host_id.clone(),
        value: serde_json::to_string(&status).expect("status serializes"),
    }])?;
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
