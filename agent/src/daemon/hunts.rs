//! Hunts: watch `/sweep/hunts/`, run each live hunt meant for this host once,
//! send its rows and one status record.
//!
//! On start (and after a compaction) the whole prefix is read, so a hunt
//! issued while the agent was down still runs; otherwise the watch resumes
//! from the last revision seen. The ledger makes "once" hold across restarts.

use std::collections::HashSet;
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use sweep_proto::record::StatusBody;
use sweep_proto::time::{calendar_time, unix_now};
use sweep_proto::{Hunt, HuntStatus, ResultRow};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::ledger::Ledger;
use super::spool::Record;
use super::Shared;
use crate::engine::QueryError;
use crate::error::AgentError;

/// Watches etcd and hands new hunts to the runner.
pub async fn watch_hunts(
    shared: Shared,
    client: Client,
    queue: mpsc::Sender<Hunt>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_rev: Option<i64> = None;
    let mut backoff = Duration::from_millis(500);
    loop {
        let result = tokio::select! {
            r = watch_once(&shared, client.clone(), &queue, &mut last_rev) => r,
            _ = shutdown.changed() => return,
        };
        match result {
            Ok(()) => backoff = Duration::from_millis(500),
            Err(e) => {
                shared
                    .metrics
                    .etcd_errors
                    .with_label_values(&["watch"])
                    .inc();
                warn!(error = %e, retry_in = ?backoff, "hunt watch interrupted");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One watch session. Returns Ok when the watch must be rebuilt from a fresh
/// read (compaction), Err on a connection failure.
async fn watch_once(
    shared: &Shared,
    mut client: Client,
    queue: &mpsc::Sender<Hunt>,
    last_rev: &mut Option<i64>,
) -> Result<(), AgentError> {
    let prefix = shared.config.etcd.keyspace().hunts();
    let start = match *last_rev {
        Some(rev) => rev + 1,
        None => {
            let resp = client
                .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
                .await?;
            let rev = resp.header().map_or(0, |h| h.revision());
            for kv in resp.kvs() {
                offer(shared, kv.value(), queue).await;
            }
            *last_rev = Some(rev);
            rev + 1
        }
    };
    let opts = WatchOptions::new().with_prefix().with_start_revision(start);
    let mut stream = client.watch(prefix.as_str(), Some(opts)).await?;
    while let Some(resp) = stream.message().await? {
        if resp.canceled() || resp.compact_revision() > 0 {
            warn!(
                compact_revision = resp.compact_revision(),
                "hunt watch compacted; re-reading"
            );
            *last_rev = None;
            return Ok(());
        }
        for event in resp.events() {
            if event.event_type() == EventType::Put {
                if let Some(kv) = event.kv() {
                    offer(shared, kv.value(), queue).await;
                }
            }
        }
        if let Some(h) = resp.header() {
            *last_rev = Some(h.revision());
        }
    }
    Err(AgentError::Etcd(etcd_client::Error::WatchError(
        "watch stream ended".into(),
    )))
}

async fn offer(shared: &Shared, value: &[u8], queue: &mpsc::Sender<Hunt>) {
    match Hunt::from_json(value) {
        Ok(hunt) => {
            // The runner drops duplicates; the queue only fails at shutdown.
            let _ = queue.send(hunt).await;
        }
        Err(e) => {
            shared
                .metrics
                .hunts_skipped
                .with_label_values(&["invalid"])
                .inc();
            warn!(error = %e, "ignoring an undecodable hunt");
        }
    }
}

/// Runs hunts one at a time, in arrival order.
pub async fn run_hunts(shared: Shared, mut ledger: Ledger, mut queue: mpsc::Receiver<Hunt>) {
    // Hunts queued but not yet recorded in the ledger (a hunt can be offered
    // again by a re-read before its first run finished).
    let mut seen: HashSet<String> = HashSet::new();
    while let Some(hunt) = queue.recv().await {
        let now = unix_now();
        if ledger.has_run(&hunt.id) || !seen.insert(hunt.id.clone()) {
            continue;
        }
        if hunt.is_expired(now) {
            shared
                .metrics
                .hunts_skipped
                .with_label_values(&["expired"])
                .inc();
            continue;
        }
        if !hunt.targets.matches(&shared.host_id, &shared.config.labels) {
            shared
                .metrics
                .hunts_skipped
                .with_label_values(&["not_targeted"])
                .inc();
            continue;
        }
        let verdict = if shared.config.trust.allow_unsigned && hunt.signature.is_none() {
            Ok(())
        } else {
            shared.trusted.verify(&hunt)
        };
        let result = match verdict {
            Ok(()) => run_one(&shared, &hunt).await,
            Err(why) => {
                shared
                    .metrics
                    .hunts_skipped
                    .with_label_values(&["untrusted"])
                    .inc();
                warn!(hunt_id = %hunt.id, issuer = %hunt.issuer, error = %why, "hunt rejected");
                report_rejection(&shared, &hunt, why.to_string()).await
            }
        };
        if let Err(e) = result {
            // Results that did not reach the broker are in the spool; only a
            // spool failure gets here, and the hunt is then retried on restart.
            warn!(hunt_id = %hunt.id, error = %e, "hunt results could not be stored");
            seen.remove(&hunt.id);
            continue;
        }
        if let Err(e) = ledger.record(&hunt.id, hunt.expires_at, now) {
            warn!(hunt_id = %hunt.id, error = %e, "cannot record the hunt in the ledger");
        }
    }
}

/// Tells the controller this agent will not run the hunt, and why: a status
/// record with the error and no rows.
async fn report_rejection(shared: &Shared, hunt: &Hunt, why: String) -> Result<(), AgentError> {
    let status = HuntStatus {
        hunt_id: hunt.id.clone(),
        host_identifier: shared.host_id.clone(),
        unix_time: unix_now(),
        status: StatusBody {
            rows: 0,
            error: Some(why),
            duration_ms: 0,
            columns: Vec::new(),
        },
    };
    let record = Record {
        key: shared.host_id.clone(),
        value: serde_json::to_string(&status).expect("status serializes"),
    };
    shared.sink.send(vec![record]).await
}

async fn run_one(shared: &Shared, hunt: &Hunt) -> Result<(), AgentError> {
    info!(hunt_id = %hunt.id, issuer = %hunt.issuer, "running hunt");
    let engine = shared.engine.clone();
    let sql = hunt.sql.clone();
    let out = tokio::task::spawn_blocking(move || engine.run(&sql))
        .await
        .map_err(|e| AgentError::Task(e.to_string()))?;
    let outcome = match &out.error {
        None => "ok",
        Some(QueryError::Refused(_)) => "refused",
        Some(QueryError::Limit(_)) => "limit",
        Some(QueryError::Sql(_)) => "error",
    };
    let m = &shared.metrics;
    m.queries.with_label_values(&["hunt", outcome]).inc();
    m.query_duration.observe(out.elapsed.as_secs_f64());
    m.result_rows.inc_by(out.rows.len() as u64);
    shared
        .counters
        .hunts_run
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if out.error.is_some() {
        shared
            .counters
            .queries_failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    let now = unix_now();
    let calendar = calendar_time(now);
    let name = hunt.query_name();
    let mut records = Vec::with_capacity(out.rows.len() + 1);
    for columns in out.string_rows() {
        let row = ResultRow {
            name: name.clone(),
            host_identifier: shared.host_id.clone(),
            calendar_time: calendar.clone(),
            unix_time: now,
            epoch: 0,
            counter: 0,
            decorations: shared.decorations.clone(),
            columns,
            action: "snapshot".into(),
            hunt_id: Some(hunt.id.clone()),
        };
        records.push(Record {
            key: shared.host_id.clone(),
            value: serde_json::to_string(&row).expect("rows serialize"),
        });
    }
    let status = HuntStatus {
        hunt_id: hunt.id.clone(),
        host_identifier: shared.host_id.clone(),
        unix_time: now,
        status: StatusBody {
            rows: out.rows.len() as u64,
            error: out.error.as_ref().map(ToString::to_string),
            duration_ms: out.elapsed.as_millis() as u64,
            columns: out.columns.clone(),
        },
    };
    records.push(Record {
        key: shared.host_id.clone(),
        value: serde_json::to_string(&status).expect("status serializes"),
    });
    let rows = out.rows.len();
    shared.sink.send(records).await?;
    shared
        .counters
        .rows_sent
        .fetch_add(rows as u64, std::sync::atomic::Ordering::Relaxed);
    info!(
        hunt_id = %hunt.id,
        rows,
        duration_ms = out.elapsed.as_millis() as u64,
        error = out.error.as_ref().map(ToString::to_string).unwrap_or_default(),
        "hunt answered"
    );
    Ok(())
}
