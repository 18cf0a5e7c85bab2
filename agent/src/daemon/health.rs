//! Whether the agent can do its job, for `/ready`: every etcd watch is
//! established, the query executor is running, and the sink accepts
//! records. `/live` only says the process answers.

use std::sync::atomic::{AtomicBool, Ordering};

use super::watcher::Source;

#[derive(Default)]
pub struct Health {
    hunts: AtomicBool,
    schedules: AtomicBool,
    packs: AtomicBool,
    executor: AtomicBool,
}

/// Marks the executor running while alive; dropping it (a return or a
/// panic) marks it stopped.
pub struct ExecutorRunning<'a>(&'a Health);

impl Drop for ExecutorRunning<'_> {
    fn drop(&mut self) {
        self.0.executor.store(false, Ordering::Relaxed);
    }
}

impl Health {
    fn watch(&self, source: Source) -> &AtomicBool {
        match source {
            Source::Hunts => &self.hunts,
            Source::Schedules => &self.schedules,
            Source::Packs => &self.packs,
        }
    }

    /// Records whether `source`'s watch is established.
    pub fn set_watching(&self, source: Source, up: bool) {
        self.watch(source).store(up, Ordering::Relaxed);
    }

    pub fn executor_running(&self) -> ExecutorRunning<'_> {
        self.executor.store(true, Ordering::Relaxed);
        ExecutorRunning(self)
    }

    /// Ok, or what is not ready.
    pub fn ready(&self, sink_accepts: bool) -> Result<(), String> {
        let mut missing = Vec::new();
        for source in [Source::Hunts, Source::Schedules, Source::Packs] {
            if !self.watch(source).load(Ordering::Relaxed) {
                missing.push(format!("the {} watch is not established", source.name()));
            }
        }
        if !self.executor.load(Ordering::Relaxed) {
            missing.push("the query executor is not running".into());
        }
        if !sink_accepts {
            missing.push("the spool does not accept records (full, or a disk error)".into());
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join("; "))
        }
    }
}
