//! Liveness: a lease-bound key under `/sweep/agents/<host_id>`. The lease is
//! kept alive at a third of its TTL (no raft write); the value, with fresh
//! resource figures, is rewritten every `report_every` and whenever the
//! agent's state changes. If the agent dies the lease lapses and the key
//! vanishes within one TTL; on a clean stop the lease is revoked so it
//! vanishes at once.

use std::time::Duration;

use std::sync::atomic::Ordering;

use etcd_client::{Client, PutOptions};
use sweep_proto::heartbeat::Counters;
use sweep_proto::time::unix_now_ms;
use sweep_proto::{Heartbeat, Resources};
use tokio::sync::watch;
use tracing::{info, warn};

use super::selfstat::SelfStat;
use super::Shared;
use crate::error::AgentError;

pub async fn run(shared: Shared, client: Client, mut shutdown: watch::Receiver<bool>) {
    let mut selfstat = SelfStat::new();
    let mut backoff = Duration::from_millis(500);
    let mut attempt = 0u64;
    loop {
        match hold(&shared, client.clone(), &mut selfstat, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => {
                shared
                    .metrics
                    .etcd_errors
                    .with_label_values(&["heartbeat"])
                    .inc();
                warn!(error = %e, retry_in = ?backoff, "heartbeat lost; re-registering");
            }
        }
        // Up to as much again, different on every host: a fleet that lost
        // etcd together does not come back in one burst of lease grants.
        attempt += 1;
        let wait = backoff + jitter(&shared.host_id, attempt, backoff);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Holds one lease until shutdown (Ok) or an etcd failure (Err).
async fn hold(
    shared: &Shared,
    mut client: Client,
    selfstat: &mut SelfStat,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), AgentError> {
    let cfg = &shared.config.heartbeat;
    let ttl = cfg.ttl.as_secs().max(2) as i64;
    let lease = client.lease_grant(ttl, None).await?.id();
    let key = shared.config.etcd.keyspace().agent(&shared.host_id);
    let kv = client.clone();
    let put = |value: String| {
        let mut client = kv.clone();
        let key = key.clone();
        async move {
            client
                .put(key, value, Some(PutOptions::new().with_lease(lease)))
                .await
        }
    };
    put(heartbeat(shared, selfstat.sample()).to_json()).await?;
    info!(host_id = %shared.host_id, lease, ttl, "registered");
    let mut stream = Some(client.lease_keep_alive(lease).await?);
    let mut renewed_at = tokio::time::Instant::now();
    // Keep-alives at a third of the TTL survive one lost round trip.
    // Both ticks start one period from now: the lease was just granted and the
    // first value just written, and a CPU sample over a few milliseconds is noise.
    let keep_every = Duration::from_secs((ttl as u64 / 3).max(1));
    let beat_every = cfg.report_every.max(Duration::from_millis(200));
    let mut reported = state(shared);
    let start = tokio::time::Instant::now();
    let mut keep_tick = tokio::time::interval_at(start + keep_every, keep_every);
    let mut beat_tick = tokio::time::interval_at(start + beat_every, beat_every);
    // A slow etcd (a lost round trip, a write that times out while it
    // catches up) must not make the agent give up its lease: granting a new
    // one and writing again is two more raft writes, and a fleet doing that
    // at once is a storm. Only a lease that is gone is re-registered.
    let failed = |e: &dyn std::fmt::Display, what: &str| {
        shared
            .metrics
            .etcd_errors
            .with_label_values(&["heartbeat"])
            .inc();
        warn!(error = %e, what, "heartbeat write failed; the lease holds, retrying");
    };
    loop {
        tokio::select! {
            _ = keep_tick.tick() => {
                let renewed = match stream.as_mut() {
                    Some((keeper, responses)) => match keeper.keep_alive().await {
                        Ok(()) => responses.message().await,
                        Err(e) => Err(e),
                    },
                    // The stream broke last time: a new one, for the same lease.
                    None => match client.lease_keep_alive(lease).await {
                        Ok((mut keeper, mut responses)) => {
                            let r = match keeper.keep_alive().await {
                                Ok(()) => responses.message().await,
                                Err(e) => Err(e),
                            };
                            stream = Some((keeper, responses));
                            r
                        }
                        Err(e) => Err(e),
                    },
                };
                match renewed {
                    Ok(Some(r)) if r.ttl() > 0 => renewed_at = tokio::time::Instant::now(),
                    Ok(Some(_)) => return Err(AgentError::LeaseExpired(lease)),
                    Ok(None) | Err(_) => {
                        stream = None;
                        failed(&"keep-alive not answered", "keep-alive");
                        // Past the TTL since the last renewal the lease is
                        // surely gone: register anew. Until then keep trying
                        // to renew this one.
                        if renewed_at.elapsed() >= Duration::from_secs(ttl as u64) {
                            return Err(AgentError::LeaseExpired(lease));
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
                    match put(heartbeat(shared, res).to_json()).await {
                        Ok(_) => {
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
                match put(heartbeat(shared, res).to_json()).await {
                    Ok(_) => reported = state(shared),
                    Err(e) => failed(&e, "put"),
                }
            }
            _ = shutdown.changed() => {
                if let Err(e) = client.lease_revoke(lease).await {
                    warn!(error = %e, "could not revoke the lease; it will lapse within its TTL");
                } else {
                    info!(host_id = %shared.host_id, "lease revoked");
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
