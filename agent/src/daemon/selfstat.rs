//! The agent's own resource use, from /proc/self, for heartbeats and metrics.

use std::time::Instant;

use sweep_proto::Resources;

use crate::tables::util::{page_size, ticks_per_second};

/// Samples CPU as the difference between two readings.
pub struct SelfStat {
    last: Option<(Instant, u64)>,
}

impl SelfStat {
    pub fn new() -> Self {
        Self { last: None }
    }

    pub fn sample(&mut self) -> Resources {
        let Ok(me) = procfs::process::Process::myself() else {
            return Resources::default();
        };
        let mut res = Resources::default();
        if let Ok(stat) = me.stat() {
            let ticks = stat.utime + stat.stime;
            let now = Instant::now();
            if let Some((then, before)) = self.last {
                let wall = now.duration_since(then).as_secs_f64();
                if wall > 0.0 {
                    let cpu = ticks.saturating_sub(before) as f64 / ticks_per_second() as f64;
                    res.cpu_percent = (cpu / wall * 1000.0).round() / 10.0;
                }
            }
            self.last = Some((now, ticks));
            res.rss_bytes = stat.rss * page_size();
            res.threads = stat.num_threads.max(0) as u64;
        }
        res.fds = me.fd_count().map(|n| n as u64).unwrap_or(0);
        res
    }
}

impl Default for SelfStat {
    fn default() -> Self {
        Self::new()
    }
}
