//! The one place queries run in the daemon, one at a time: hunts first, then
//! changes to the schedule, then whatever scheduled query is due.
//!
//! The executor is supervised: should it die (a panic), `/ready` fails, the
//! death is logged and counted, and a new executor starts after a back-off,
//! from the state on disk (the hunt ledger, the differential results) and a
//! fresh reading of the schedule — never a heartbeating agent that no longer
//! runs queries.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Mutex};
use tokio::time::Instant;
use tracing::error;

use super::diff::DiffStore;
use super::hunts::HuntRunner;
use super::ledger::Ledger;
use super::scheduler::Scheduler;
use super::watcher::{Change, Source};
use super::Shared;
use crate::error::AgentError;

type Changes = Arc<Mutex<mpsc::Receiver<(Source, Change)>>>;

/// Runs the executor until shutdown, starting it again whenever it dies.
pub async fn supervise(
    shared: Shared,
    changes: mpsc::Receiver<(Source, Change)>,
    shutdown: watch::Receiver<bool>,
) {
    let changes: Changes = Arc::new(Mutex::new(changes));
    let start = || {
        let (shared, changes, shutdown) = (shared.clone(), changes.clone(), shutdown.clone());
        async move {
            match state(&shared) {
                Ok((hunts, scheduler)) => run(shared, hunts, scheduler, changes, shutdown).await,
                // Reported like a death: retried after the back-off.
                Err(e) => panic!("the executor's state cannot be read: {e}"),
            }
        }
    };
    let restarted = || {
        shared.metrics.executor_restarts.inc();
        // The new executor starts with an empty schedule: every watch reads
        // its prefix again.
        shared.resync.send_modify(|generation| *generation += 1);
    };
    restarting(
        "query executor",
        Duration::from_secs(1),
        start,
        restarted,
        shutdown.clone(),
    )
    .await;
}

/// What an executor starts from: the hunts already run and the last
/// differential results, as on disk.
fn state(shared: &Shared) -> Result<(HuntRunner, Scheduler), AgentError> {
    let dir = &shared.config.state_dir;
    let ledger = Ledger::open(&dir.join("hunts.json"))?;
    let diffs = DiffStore::open(&dir.join("differential"))?;
    Ok((
        HuntRunner::new(ledger),
        Scheduler::new(diffs, shared.schedule.clone()),
    ))
}

/// Runs the task `start` makes until it returns or shutdown; when it panics,
/// calls `restarted` and starts another after a back-off (`backoff`,
/// doubling to 30 s).
pub async fn restarting<F, Fut>(
    what: &'static str,
    mut backoff: Duration,
    mut start: F,
    mut restarted: impl FnMut(),
    mut shutdown: watch::Receiver<bool>,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match tokio::spawn(start()).await {
            Ok(()) => return,
            Err(e) => {
                error!(task = what, error = %e, restart_in = ?backoff, "task died; restarting it");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                restarted();
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

async fn run(
    shared: Shared,
    mut hunts: HuntRunner,
    mut scheduler: Scheduler,
    changes: Changes,
    mut shutdown: watch::Receiver<bool>,
) {
    let _running = shared.health.executor_running();
    let mut changes = changes.lock().await;
    let mut paused = shared.paused.subscribe();
    loop {
        if *paused.borrow() {
            tokio::select! {
                _ = paused.wait_for(|p| !*p) => {}
                _ = shutdown.changed() => return,
            }
        }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_is_started_again() {
        let starts = Arc::new(AtomicU32::new(0));
        let restarts = AtomicU32::new(0);
        let (_stop, shutdown) = watch::channel(false);
        let counted = starts.clone();
        let start = move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move { assert!(n >= 2, "dies at start {n}") }
        };
        let restarted = || {
            restarts.fetch_add(1, Ordering::SeqCst);
        };
        restarting("test", Duration::from_millis(5), start, restarted, shutdown).await;
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        assert_eq!(restarts.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_stop_during_the_back_off_is_not_delayed() {
        let (stop, shutdown) = watch::channel(false);
        let start = || async { panic!("always") };
        let backoff = Duration::from_secs(3600);
        let supervisor = tokio::spawn(restarting("test", backoff, start, || {}, shutdown));
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), supervisor)
            .await
            .expect("stopped at once")
            .unwrap();
    }
}
