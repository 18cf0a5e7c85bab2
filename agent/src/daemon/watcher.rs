//! Watching an etcd prefix without missing a change.
//!
//! On start, and whenever the watch cannot resume (compaction), the whole
//! prefix is read and announced as [`Change::Reset`] followed by every key:
//! the consumer rebuilds its view, so a key deleted while the agent was away
//! disappears too; likewise when asked to ([`super::SharedInner::resync`]).
//! Otherwise the watch resumes from the last revision seen.

use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions};
use tokio::sync::{mpsc, watch};
use tracing::warn;

use super::Shared;
use crate::error::AgentError;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Forget everything from this source: a full listing follows.
    Reset,
    Put {
        key: String,
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
}

/// Watches `prefix` until shutdown, sending `(source, change)` to `tx`.
pub async fn watch_prefix(
    shared: Shared,
    client: Client,
    source: Source,
    prefix: String,
    tx: mpsc::Sender<(Source, Change)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_rev: Option<i64> = None;
    let mut backoff = Duration::from_millis(500);
    let mut resync = shared.resync.subscribe();
    loop {
        let result = tokio::select! {
            r = watch_once(&shared, client.clone(), source, &prefix, &tx, &mut last_rev) => r,
            _ = resync.changed() => {
                last_rev = None;
                continue;
            }
            _ = shutdown.changed() => return,
        };
        match result {
            Ok(()) => backoff = Duration::from_millis(500),
            Err(e) => {
                shared.health.set_watching(source, false);
                shared
                    .metrics
                    .etcd_errors
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

/// One watch session. Ok: rebuild from a fresh read (compaction). Err: the
/// connection failed; resume from `last_rev`.
async fn watch_once(
    shared: &Shared,
    mut client: Client,
    source: Source,
    prefix: &str,
    tx: &mpsc::Sender<(Source, Change)>,
    last_rev: &mut Option<i64>,
) -> Result<(), AgentError> {
    // A send fails only when the executor is gone, i.e. at shutdown.
    let send = |change: Change| async move {
        let _ = tx.send((source, change)).await;
    };
    let start = match *last_rev {
        Some(rev) => rev + 1,
        None => {
            let (rev, kvs) = sweep_proto::etcd::get_prefix(&mut client, prefix).await?;
            send(Change::Reset).await;
            for kv in &kvs {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                send(Change::Put {
                    key,
                    value: kv.value().to_vec(),
                })
                .await;
            }
            *last_rev = Some(rev);
            rev + 1
        }
    };
    let opts = WatchOptions::new().with_prefix().with_start_revision(start);
    let mut stream = client.watch(prefix, Some(opts)).await?;
    shared.health.set_watching(source, true);
    while let Some(resp) = stream.message().await? {
        if resp.canceled() || resp.compact_revision() > 0 {
            warn!(
                source = source.name(),
                compact_revision = resp.compact_revision(),
                "watch compacted; re-reading"
            );
            *last_rev = None;
            return Ok(());
        }
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            match event.event_type() {
                EventType::Put => {
                    send(Change::Put {
                        key,
                        value: kv.value().to_vec(),
                    })
                    .await
                }
                EventType::Delete => send(Change::Delete { key }).await,
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
