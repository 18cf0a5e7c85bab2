//! Liveness: a key under `/sweep/agents/<host_id>` held while the agent
//! lives (etcd: bound to a lease; ZooKeeper: an ephemeral node of the
//! agent's session). The hold is renewed at a third of its TTL (no write);
//! the value, with fresh resource figures, is rewritten every
//! `report_every` and whenever the agent's state changes. If the agent dies
//! the key vanishes within one TTL; on a clean stop it goes at once.

use std::time::Duration;

use std::sync::atomic::Ordering;

use sweep_proto::coordination::Renewal;
use sweep_proto::heartbeat::Counters;
use sweep_proto::time::unix_now_ms;
use sweep_proto::Store;
use sweep_proto::{Heartbeat, Resources};
use tokio::sync::watch;
use tracing::{info, warn};

use super::selfstat::SelfStat;
use super::Shared;
use crate::error::AgentError;

pub async fn run(shared: Shared, store: Store, mut shutdown: watch::Receiver<bool>) {
    let mut selfstat = SelfStat::new();
    let mut backoff = Duration::from_millis(500);
    let mut attempt = 0u64;
    loop {
        match hold(&shared, &store, &mut selfstat, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => {
                shared
                    .metrics
                    .coordination_errors
                    .with_label_values(&["heartbeat"])
                    .inc();
                warn!(error = %e, retry_in = ?backoff, "heartbeat lost; re-registering");
            }
        }
        // Up to as much again, different on every host: a fleet that lost
        // its store together does not come back in one burst of registrations.
        attempt += 1;
        let wait = backoff + jitter(&shared.host_id, attempt, backoff);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Holds one registration until shutdown (Ok) or its loss (Err).
async fn hold(
    shared: &Shared,
    store: &Store,
    selfstat: &mut SelfStat,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), AgentError> {
    let cfg = &shared.config.heartbeat;
    let ttl = cfg.ttl.max(Duration::from_secs(2));
    let key = shared.config.keyspace().agent(&shared.host_id);
    let first = heartbeat(shared, selfstat.sample()).to_json();
    let mut held = store.register(&key, first.as_bytes(), ttl).await?;
    info!(host_id = %shared.host_id, held = %held.id(), ttl = ?ttl, "registered");
    let mut renewed_at = tokio::time::Instant::now();
    // Renewals at a third of the TTL survive one lost round trip.
    // Both ticks start one period from now: the key was just written, and a
    // CPU sample over a few milliseconds is noise.
    let keep_every = (ttl / 3).max(Duration::from_secs(1));
    let beat_every = cfg.report_every.max(Duration::from_millis(200));
    let mut reported = state(shared);
    let start = tokio::time::Instant::now();
    let mut keep_tick = tokio::time::interval_at(start + keep_every, keep_every);
    let mut beat_tick = tokio::time::interval_at(start + beat_every, beat_every);
    // A slow store (a lost round trip, a write that times out while it
    // catches up) must not make the agent give up its registration:
    // registering again is more writes, and a fleet doing that at once is a
    // storm. Only a registration that is gone is made anew.
    let failed = |e: &dyn std::fmt::Display, what: &str| {
        shared
            .metrics
            .coordination_errors
            .with_label_values(&["heartbeat"])
            .inc();
        warn!(error = %e, what, "heartbeat write failed; the registration holds, retrying");
    };
    loop {
        tokio::select! {
            _ = keep_tick.tick() => {
                match held.renew().await {
                    Ok(Renewal::Held) => renewed_at = tokio::time::Instant::now(),
                    Ok(Renewal::Lost) => return Err(AgentError::LeaseExpired(held.id())),
                    Err(e) => {
                        failed(&e, "renew");
                        // Past the TTL since the last renewal the
                        // registration is surely gone: register anew. Until
                        // then keep trying to renew this one.
                        if renewed_at.elapsed() >= ttl {
                            return Err(AgentError::LeaseExpired(held.id()));
                        }
                        continue;
                    }
                }
                // A change of state is news now, not at the next report.
                let now = state(shared);
                if now != reported {
                    info!(state = %now.as_deref().unwrap_or("ready"), "agent state changed");
                    let res = selfstat.sample();
                    record_resources(shared, &res);
                    match held.update(heartbeat(shared, res).to_json().as_bytes()).await {
                        Ok(()) => {
                            reported = now;
                            beat_tick.reset();
                        }
                        Err(e) => failed(&e, "put"),
                    }
                }
            }
            _ = beat_tick.tick() => {
                let res = selfstat.sample();
                record_resources(shared, &res);
                match held.update(heartbeat(shared, res).to_json().as_bytes()).await {
                    Ok(()) => reported = state(shared),
                    Err(e) => failed(&e, "put"),
                }
            }
            _ = shutdown.changed() => {
                let id = held.id();
                if let Err(e) = held.revoke().await {
                    warn!(error = %e, "could not let go of the registration; it will lapse within its TTL");
                } else {
                    info!(host_id = %shared.host_id, held = %id, "registration revoked");
                }
                return Ok(());
            }
        }
    }
}

/// A share of `up_to` that differs from host to host and attempt to
/// attempt (a hash of both: no shared random state to coordinate).
fn jitter(host_id: &str, attempt: u64, up_to: Duration) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (host_id, attempt).hash(&mut h);
    up_to.mul_f64((h.finish() % 1000) as f64 / 1000.0)
}

/// The agent's state as `/ready` sees it: None when ready, else why not.
fn state(shared: &Shared) -> Option<String> {
    shared.health.ready(shared.sink.accepts_records()).err()
}

/// What the agent publishes under its lease.
fn heartbeat(shared: &Shared, resources: Resources) -> Heartbeat {
    let c = &shared.counters;
    Heartbeat {
        host_id: shared.host_id.clone(),
        version: sweep_proto::VERSION.to_string(),
        labels: shared.config.labels.clone(),
        started_at: shared.started_at,
        sent_at_ms: unix_now_ms(),
        resources,
        counters: Counters {
            hunts_run: c.hunts_run.load(Ordering::Relaxed),
            queries_failed: c.queries_failed.load(Ordering::Relaxed),
            rows_sent: c.rows_sent.load(Ordering::Relaxed),
            records_quarantined: shared.sink.quarantined(),
        },
        spool_depth: shared.sink.spool_depth(),
        identity: Some(shared.records.identity()),
        state: state(shared),
    }
}

fn record_resources(shared: &Shared, r: &Resources) {
    let m = &shared.metrics;
    m.cpu_percent.set(r.cpu_percent);
    m.rss_bytes.set(r.rss_bytes as i64);
    m.threads.set(r.threads as i64);
    m.open_fds.set(r.fds as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_spread_over_hosts_within_the_back_off() {
        let up_to = Duration::from_secs(1);
        let waits: std::collections::BTreeSet<u128> = (0..200)
            .map(|i| jitter(&format!("sim-{i:05}"), 1, up_to).as_millis())
            .collect();
        assert!(waits.iter().all(|w| *w < 1000));
        // Spread, not one instant: most hosts wait differently.
        assert!(waits.len() > 100, "{}", waits.len());
        assert_ne!(jitter("web-1", 1, up_to), jitter("web-1", 2, up_to));
    }
}
