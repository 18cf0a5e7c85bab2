//! Following a prefix of the coordination store without missing a change.
//!
//! On start, and whenever the store cannot say what changed meanwhile (an
//! etcd compaction, a ZooKeeper reconnection), the whole prefix is read and
//! announced as [`Change::Reset`] followed by every key: the consumer
//! rebuilds its view, so a key deleted while the agent was away disappears
//! too; likewise when asked to ([`super::SharedInner::resync`]). Otherwise
//! the follower resumes where it was ([`sweep_proto::coordination::Follower`]).

use std::time::Duration;

pub use sweep_proto::coordination::Change;
use sweep_proto::Store;
use tokio::sync::{mpsc, watch};
use tracing::warn;

use super::Shared;

/// Which prefix a change comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Hunts,
    Schedules,
    Packs,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Self::Hunts => "hunts",
            Self::Schedules => "schedules",
            Self::Packs => "packs",
        }
    }
}

/// Watches `prefix` until shutdown, sending `(source, change)` to `tx`.
pub async fn watch_prefix(
    shared: Shared,
    store: Store,
    source: Source,
    prefix: String,
    tx: mpsc::Sender<(Source, Change)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut follower = store.follow(&prefix);
    let mut backoff = Duration::from_millis(500);
    let mut resync = shared.resync.subscribe();
    loop {
        let next = tokio::select! {
            next = follower.next() => next,
            _ = resync.changed() => {
                follower = store.follow(&prefix);
                continue;
            }
            _ = shutdown.changed() => return,
        };
        match next {
            Ok(None) => {
                backoff = Duration::from_millis(500);
                shared.health.set_watching(source, true);
            }
            Ok(Some(change)) => {
                // A send fails only when the executor is gone, i.e. at shutdown.
                let _ = tx.send((source, change)).await;
            }
            Err(e) => {
                shared.health.set_watching(source, false);
                shared
                    .metrics
                    .coordination_errors
                    .with_label_values(&["watch"])
                    .inc();
                warn!(source = source.name(), error = %e, retry_in = ?backoff, "watch interrupted");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
