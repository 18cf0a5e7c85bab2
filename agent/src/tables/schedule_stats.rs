//! What the scheduler knows about its work, shared with the tables that
//! report it: the queries scheduled now (`osquery_schedule`), the packs
//! loaded (`osquery_packs`), and each query's run statistics, which the
//! scheduler records after every run as osquery's `recordQueryPerformance`
//! does.
//!
//! One [`ScheduleStats`] lives in the [`TableEnv`](super::TableEnv) of a
//! process; the daemon's scheduler writes it, the tables read it. The fleet
//! simulator's virtual agents share one process and so one of these: there
//! the tables show every virtual agent's runs together.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// One query the scheduler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledQuery {
    pub query: String,
    /// Seconds between runs.
    pub interval: u64,
    /// The pack it came from, if any.
    pub pack: Option<String>,
    /// Stopped by a limit and not run until its deny-listing ends.
    pub denylisted: bool,
}

/// A query's runs so far, in osquery's units: times in milliseconds except
/// `wall_time` (whole seconds, each run's truncated, as osquery sums them),
/// sizes in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Performance {
    pub executions: u64,
    /// Unix seconds of the last completed run.
    pub last_executed: u64,
    /// Bytes of column names and values of every row returned.
    pub output_size: u64,
    pub wall_time: u64,
    pub wall_time_ms: u64,
    pub last_wall_time_ms: u64,
    pub user_time: u64,
    pub last_user_time: u64,
    pub system_time: u64,
    pub last_system_time: u64,
    /// Average growth of the agent's resident memory over the runs in which
    /// it grew (osquery's formula).
    pub average_memory: u64,
    pub last_memory: u64,
}

/// What one run cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCost {
    pub wall: Duration,
    /// CPU time of the thread that ran the query.
    pub user: Duration,
    pub system: Duration,
    /// Growth of the agent's resident memory while the query ran, with its
    /// rows still held; 0 when it did not grow.
    pub memory_growth: u64,
    /// Bytes of column names and values of the rows returned.
    pub output_size: u64,
}

/// A loaded pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackInfo {
    /// osquery's platform string, empty when the pack names none.
    pub platform: String,
    /// Whether the pack has discovery queries at all.
    pub has_discovery: bool,
    /// Times the cached discovery verdict was used.
    pub discovery_cache_hits: u64,
    /// Times the discovery queries ran.
    pub discovery_executions: u64,
    /// The last discovery verdict, None before the first.
    pub discovered: Option<bool>,
}

impl PackInfo {
    /// Whether the pack's queries run: it has no discovery queries, or they
    /// last passed.
    pub fn active(&self) -> bool {
        !self.has_discovery || self.discovered == Some(true)
    }
}

#[derive(Debug, Default)]
struct Inner {
    scheduled: BTreeMap<String, ScheduledQuery>,
    /// By query name. Kept when a query is re-put or the schedule is read
    /// again (osquery keeps them in its database by name); dropped when
    /// the query is deleted.
    performance: BTreeMap<String, Performance>,
    packs: BTreeMap<String, PackInfo>,
}

/// The scheduler's state as the tables see it. Every method takes the lock
/// briefly; a poisoned lock (a panic elsewhere) is used as it is.
#[derive(Debug, Default)]
pub struct ScheduleStats {
    inner: Mutex<Inner>,
}

impl ScheduleStats {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new scheduler starts empty: it reads every schedule and pack again.
    /// Statistics stay.
    pub fn clear_schedule(&self) {
        let mut inner = self.lock();
        inner.scheduled.clear();
        inner.packs.clear();
    }

    /// `name` now runs `query` every `interval` seconds.
    pub fn schedule(&self, name: &str, query: &str, interval: u64, pack: Option<&str>) {
        self.lock().scheduled.insert(
            name.to_string(),
            ScheduledQuery {
                query: query.to_string(),
                interval,
                pack: pack.map(str::to_string),
                denylisted: false,
            },
        );
    }

    /// `name` no longer runs; its statistics go too when it was deleted.
    pub fn unschedule(&self, name: &str, deleted: bool) {
        let mut inner = self.lock();
        inner.scheduled.remove(name);
        if deleted {
            inner.performance.remove(name);
        }
    }

    /// Marks `name` as deny-listed or not.
    pub fn set_denylisted(&self, name: &str, denylisted: bool) {
        if let Some(q) = self.lock().scheduled.get_mut(name) {
            q.denylisted = denylisted;
        }
    }

    /// Adds one run of `name` that completed at `now` (Unix seconds).
    pub fn record_run(&self, name: &str, cost: &RunCost, now: u64) {
        let mut inner = self.lock();
        let p = inner.performance.entry(name.to_string()).or_default();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (wall, user, system) = (ms(cost.wall), ms(cost.user), ms(cost.system));
        p.last_wall_time_ms = wall;
        p.wall_time_ms = p.wall_time_ms.saturating_add(wall);
        p.wall_time = p.wall_time.saturating_add(wall / 1000);
        p.last_user_time = user;
        p.user_time = p.user_time.saturating_add(user);
        p.last_system_time = system;
        p.system_time = p.system_time.saturating_add(system);
        if cost.memory_growth > 0 {
            // osquery: the mean over the runs so far, counting this one.
            let total = u128::from(p.average_memory) * u128::from(p.executions)
                + u128::from(cost.memory_growth);
            p.average_memory =
                u64::try_from(total / (u128::from(p.executions) + 1)).unwrap_or(u64::MAX);
            p.last_memory = cost.memory_growth;
        }
        p.output_size = p.output_size.saturating_add(cost.output_size);
        p.executions += 1;
        p.last_executed = now;
    }

    /// Pack `name` is loaded.
    pub fn load_pack(&self, name: &str, platform: Option<&str>, has_discovery: bool) {
        self.lock().packs.insert(
            name.to_string(),
            PackInfo {
                platform: platform.unwrap_or_default().to_string(),
                has_discovery,
                discovery_cache_hits: 0,
                discovery_executions: 0,
                discovered: None,
            },
        );
    }

    pub fn unload_pack(&self, name: &str) {
        self.lock().packs.remove(name);
    }

    /// Pack `name`'s discovery verdict was taken from the cache (`cached`)
    /// or from running its discovery queries. Unknown names are ignored.
    pub fn pack_discovery(&self, name: &str, cached: bool, verdict: bool) {
        if let Some(p) = self.lock().packs.get_mut(name) {
            if cached {
                p.discovery_cache_hits += 1;
            } else {
                p.discovery_executions += 1;
            }
            p.discovered = Some(verdict);
        }
    }

    /// The queries scheduled now, by name, with their statistics (zero
    /// before the first run).
    pub fn queries(&self) -> Vec<(String, ScheduledQuery, Performance)> {
        let inner = self.lock();
        inner
            .scheduled
            .iter()
            .map(|(name, q)| {
                let perf = inner.performance.get(name).copied().unwrap_or_default();
                (name.clone(), q.clone(), perf)
            })
            .collect()
    }

    /// The packs loaded now, by name.
    pub fn packs(&self) -> Vec<(String, PackInfo)> {
        let inner = self.lock();
        inner
            .packs
            .iter()
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect()
    }
}

/// CPU time of the calling thread and the process's resident memory, read
/// before and after a query to learn what it cost.
#[derive(Debug, Clone, Copy)]
pub struct ThreadUsage {
    user_ticks: u64,
    system_ticks: u64,
    resident: u64,
}

impl ThreadUsage {
    /// This thread's CPU times (from /proc/thread-self/stat) and the
    /// process's resident memory now. None when /proc cannot be read.
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
        let (user_ticks, system_ticks) = cpu_ticks(&stat)?;
        Some(Self {
            user_ticks,
            system_ticks,
            resident: super::resident_bytes().unwrap_or(0),
        })
    }

    /// User time, system time and memory growth since `before`.
    pub fn since(&self, before: &Self) -> (Duration, Duration, u64) {
        let hz = super::util::ticks_per_second();
        let time = |ticks: u64| Duration::from_millis(ticks.saturating_mul(1000) / hz);
        (
            time(self.user_ticks.saturating_sub(before.user_ticks)),
            time(self.system_ticks.saturating_sub(before.system_ticks)),
            self.resident.saturating_sub(before.resident),
        )
    }
}

/// `utime` and `stime` (fields 14 and 15 of proc(5)'s stat) from a stat
/// line. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from its closing parenthesis.
fn cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user = fields.next()?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some((user, system))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_ticks_after_the_command_name() {
        let line = "4242 (a b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 37 12 0 0 20 0 1 0 5 0 0";
        assert_eq!(cpu_ticks(line), Some((37, 12)));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    /// The thread's CPU times agree with procfs's reading of this task's
    /// stat, and grow with work done on this thread.
    #[test]
    fn thread_usage_reads_this_threads_cpu_time() {
        let link = std::fs::read_link("/proc/thread-self").unwrap();
        let tid: i32 = link.file_name().unwrap().to_str().unwrap().parse().unwrap();
        let before = ThreadUsage::now().unwrap();
        let task = procfs::process::Process::myself()
            .unwrap()
            .task_from_tid(tid)
            .unwrap()
            .stat()
            .unwrap();
        let after = ThreadUsage::now().unwrap();
        assert!(task.utime >= before.user_ticks && task.utime <= after.user_ticks);
        assert!(task.stime >= before.system_ticks && task.stime <= after.system_ticks);
        // Work until the kernel has charged this thread two ticks more.
        let two_ticks = Duration::from_millis(2000 / crate::tables::util::ticks_per_second());
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut x = 0u64;
        loop {
            for i in 0..100_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            let (user, system, _) = ThreadUsage::now().unwrap().since(&after);
            if user + system >= two_ticks {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no CPU time charged to this thread"
            );
        }
        std::hint::black_box(x);
    }

    #[test]
    fn records_runs_as_osquery_does() {
        let stats = ScheduleStats::default();
        stats.schedule("q", "select 1", 60, None);
        stats.schedule("pack_p_a", "select 2", 10, Some("p"));
        let q = |stats: &ScheduleStats| {
            stats
                .queries()
                .into_iter()
                .find(|(n, ..)| n == "q")
                .unwrap()
        };
        assert_eq!(q(&stats).2, Performance::default());
        stats.record_run(
            "q",
            &RunCost {
                wall: Duration::from_millis(1500),
                user: Duration::from_millis(30),
                system: Duration::from_millis(10),
                memory_growth: 4000,
                output_size: 100,
            },
            1_700_000_000,
        );
        stats.record_run(
            "q",
            &RunCost {
                wall: Duration::from_millis(2700),
                user: Duration::from_millis(20),
                system: Duration::ZERO,
                memory_growth: 0,
                output_size: 50,
            },
            1_700_000_060,
        );
        stats.record_run(
            "q",
            &RunCost {
                wall: Duration::from_millis(10),
                memory_growth: 1000,
                ..RunCost::default()
            },
            1_700_000_120,
        );
        let (_, sq, p) = q(&stats);
        assert_eq!(sq.query, "select 1");
        assert_eq!(sq.interval, 60);
        assert_eq!(
            p,
            Performance {
                executions: 3,
                last_executed: 1_700_000_120,
                output_size: 150,
                // 1 + 2 + 0 whole seconds.
                wall_time: 3,
                wall_time_ms: 4210,
                last_wall_time_ms: 10,
                user_time: 50,
                last_user_time: 0,
                system_time: 10,
                last_system_time: 0,
                // (4000 * 1 + 0 growth not counted) then (4000 * 2 + 1000) / 3.
                average_memory: 3000,
                last_memory: 1000,
            }
        );

        stats.set_denylisted("q", true);
        assert!(q(&stats).1.denylisted);
        // Re-put: statistics stay; deleted: they go.
        stats.unschedule("q", false);
        assert_eq!(stats.queries().len(), 1);
        stats.schedule("q", "select 1", 60, None);
        assert_eq!(q(&stats).2.executions, 3);
        assert!(!q(&stats).1.denylisted);
        stats.unschedule("q", true);
        stats.schedule("q", "select 1", 60, None);
        assert_eq!(q(&stats).2, Performance::default());

        stats.clear_schedule();
        assert!(stats.queries().is_empty());
    }

    #[test]
    fn tracks_pack_discovery() {
        let stats = ScheduleStats::default();
        stats.load_pack("plain", None, false);
        stats.load_pack("gated", Some("linux"), true);
        let pack = |name: &str| {
            stats
                .packs()
                .into_iter()
                .find(|(n, _)| n == name)
                .unwrap()
                .1
        };
        assert!(pack("plain").active());
        assert!(!pack("gated").active(), "not yet discovered");
        stats.pack_discovery("gated", false, true);
        stats.pack_discovery("gated", true, true);
        stats.pack_discovery("gated", true, true);
        let g = pack("gated");
        assert_eq!(
            (g.discovery_executions, g.discovery_cache_hits, g.active()),
            (1, 2, true)
        );
        assert_eq!(g.platform, "linux");
        stats.pack_discovery("gated", false, false);
        assert!(!pack("gated").active());
        stats.pack_discovery("schedule:x", false, true);
        assert_eq!(stats.packs().len(), 2);
        stats.unload_pack("gated");
        assert_eq!(stats.packs().len(), 1);
    }
}
