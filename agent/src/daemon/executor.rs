//! The one place queries run in the daemon, one at a time: hunts first, then
//! changes to the schedule, then whatever scheduled query is due.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::hunts::HuntRunner;
use super::scheduler::Scheduler;
use super::watcher::{Change, Source};
use super::Shared;

pub async fn run(
    shared: Shared,
    mut hunts: HuntRunner,
    mut scheduler: Scheduler,
    mut changes: mpsc::Receiver<(Source, Change)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _running = shared.health.executor_running();
    loop {
        // With nothing scheduled, wake up now and then anyway; a change wakes
        // the loop sooner.
        let due = scheduler
            .next_due()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            change = changes.recv() => match change {
                None => return,
                Some((Source::Hunts, Change::Put { key, value })) => {
                    hunts.offer(&shared, &key, &value).await;
                }
                // A hunt's key goes when its lease ends; nothing to undo.
                Some((Source::Hunts, _)) => {}
                Some((source, change)) => scheduler.apply(&shared, source, change),
            },
            _ = tokio::time::sleep_until(due) => scheduler.run_due(&shared).await,
        }
    }
}
