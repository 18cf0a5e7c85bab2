//! Benchmarks for the `processes` table: (a) a full scan against
//! `ps -eo pid,comm,args,uid,rss`, in-process and as whole commands, and (b) a
//! point lookup by pid, against a goal of 1 ms.
//!
//! A benchmark, not a timed test: it prints numbers and never fails on them
//! (only on a query error). `cargo bench -p sweep-agent --bench engine`, or
//! ops/bench/processes.sh. Knobs (environment):
//! - `SWEEP_BENCH_ITERS`: timed iterations per measurement (default 100; the
//!   point lookup runs 10x as many, it is cheap);
//! - `SWEEP_BENCH_SLEEPERS`: `sleep 600` children to spawn first (default 200);
//! - `SWEEP_AGENT_BIN`: the release `sweep-agent` to spawn (default: next to
//!   this bench executable, i.e. target/release/sweep-agent).

use std::hint::black_box;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sweep_agent::tables::Registry;
use sweep_agent::{Engine, Limits};

const SCAN_SQL: &str = "SELECT pid, name, cmdline, uid, resident_size FROM processes";
const PS_ARGS: &[&str] = &["-eo", "pid,comm,args,uid,rss"];
const PS_LABEL: &str = "ps -eo pid,comm,args,uid,rss";

/// `sleep 600` children that give the host a realistic process count. Killed
/// and reaped on drop, so a panicking bench leaves none behind (and should the
/// bench itself be killed, they end on their own after 10 minutes).
struct Sleepers(Vec<Child>);

impl Sleepers {
    fn spawn(n: usize) -> Self {
        // Constructed before the first spawn, so a panic mid-way still reaps.
        let mut sleepers = Sleepers(Vec::with_capacity(n));
        for _ in 0..n {
            let child = Command::new("sleep")
                .arg("600")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            match child {
                Ok(c) => sleepers.0.push(c),
                Err(e) => {
                    eprintln!("warning: spawned {} of {n} sleepers: {e}", sleepers.0.len());
                    break;
                }
            }
        }
        sleepers
    }

    fn first_pid(&self) -> Option<u32> {
        self.0.first().map(Child::id)
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

struct Stats {
    iters: usize,
    mean: Duration,
    p50: Duration,
    p99: Duration,
    min: Duration,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Self {
        assert!(!samples.is_empty());
        samples.sort_unstable();
        let n = samples.len();
        // Nearest rank: the smallest sample with at least p of them at or below it.
        let rank = |p: f64| samples[((n as f64 * p).ceil() as usize).clamp(1, n) - 1];
        Stats {
            iters: n,
            mean: samples.iter().sum::<Duration>() / n as u32,
            p50: rank(0.50),
            p99: rank(0.99),
            min: samples[0],
        }
    }
}

fn timed(f: &mut impl FnMut()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// Times `f` `iters` times after `warmup` untimed runs.
fn measure(warmup: usize, iters: usize, mut f: impl FnMut()) -> Stats {
    for _ in 0..warmup {
        f();
    }
    Stats::of((0..iters).map(|_| timed(&mut f)).collect())
}

/// Times `a` and `b` alternately, so load from other work on this shared
/// host falls on both alike and the ratio stays meaningful.
fn measure_pair(
    warmup: usize,
    iters: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (Stats, Stats) {
    for _ in 0..warmup {
        a();
        b();
    }
    let (mut sa, mut sb) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    for _ in 0..iters {
        sa.push(timed(&mut a));
        sb.push(timed(&mut b));
    }
    (Stats::of(sa), Stats::of(sb))
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// The release binary: explicit, else next to this bench executable
/// (target/release/deps/engine-… → target/release/sweep-agent).
fn agent_binary() -> Option<PathBuf> {
    let bin = match std::env::var_os("SWEEP_AGENT_BIN") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()
            .ok()?
            .parent()?
            .parent()?
            .join("sweep-agent"),
    };
    bin.is_file().then_some(bin)
}

/// Runs a command with its output captured, as a caller reading it would.
fn run_captured(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("spawn");
    assert!(out.status.success(), "{cmd:?} failed: {:?}", out.status);
    out
}

fn count_pids() -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                })
                .count()
        })
        .unwrap_or(0)
}

fn main() {
    let iters = env_usize("SWEEP_BENCH_ITERS", 100);
    let warmup = (iters / 10).max(3);
    let sleepers = Sleepers::spawn(env_usize("SWEEP_BENCH_SLEEPERS", 200));
    let engine = Engine::new(Arc::new(Registry::default()), Limits::default());

    let scan = || {
        let out = engine.run(SCAN_SQL);
        assert!(out.error.is_none(), "{SCAN_SQL}: {:?}", out.error);
        black_box(out);
    };
    let ps = || {
        black_box(run_captured(Command::new("ps").args(PS_ARGS)));
    };

    // Sanity: both see the same host, give or take processes that come and go.
    let procs = count_pids();
    let sweep_rows = engine.run(SCAN_SQL).rows.len();
    let ps_rows = String::from_utf8_lossy(&run_captured(Command::new("ps").args(PS_ARGS)).stdout)
        .lines()
        .count()
        .saturating_sub(1);

    let mut table: Vec<(String, Stats)> = Vec::new();
    let (in_sweep, in_ps) = measure_pair(warmup, iters, scan, ps);
    table.push(("(a1) Engine::run scan, in-process".into(), in_sweep));
    table.push((format!("(a1) spawn {PS_LABEL}"), in_ps));

    let binary = agent_binary();
    match &binary {
        Some(bin) => {
            let agent = || {
                black_box(run_captured(
                    Command::new(bin).args(["query", SCAN_SQL, "--json"]),
                ));
            };
            let (cmd_sweep, cmd_ps) = measure_pair(warmup, iters, agent, ps);
            table.push(("(a2) spawn sweep-agent query --json".into(), cmd_sweep));
            table.push((format!("(a2) spawn {PS_LABEL}"), cmd_ps));
        }
        None => eprintln!(
            "note: no release sweep-agent next to this bench, so no (a2) whole-command \
             comparison: run `cargo build --release -p sweep-agent` (or set SWEEP_AGENT_BIN)"
        ),
    }

    let pid = sleepers.first_pid().unwrap_or_else(std::process::id);
    let lookup_sql = format!("SELECT * FROM processes WHERE pid = {pid}");
    let floor_sql = format!("SELECT pid FROM processes WHERE pid = {pid}");
    for (label, sql) in [
        (
            format!("(b) Engine::run SELECT * ... pid = {pid}"),
            &lookup_sql,
        ),
        // The same lookup reading nothing but the pid: the engine's own cost.
        ("    floor: SELECT pid ... pid = N".to_string(), &floor_sql),
    ] {
        let stats = measure(warmup * 10, iters * 10, || {
            let out = engine.run(sql);
            assert!(out.error.is_none() && out.rows.len() == 1, "{sql}: {out:?}");
            black_box(out);
        });
        table.push((label, stats));
    }

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "host: {cores} cores, {procs} processes ({} sleepers); rows: sweep {sweep_rows}, ps {ps_rows}",
        sleepers.0.len()
    );
    println!(
        "{:<46} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "benchmark (times in ms)", "iters", "mean", "p50", "p99", "min"
    );
    for (label, s) in &table {
        println!(
            "{label:<46} {:>6} {:>9} {:>9} {:>9} {:>9}",
            s.iters,
            ms(s.mean),
            ms(s.p50),
            ms(s.p99),
            ms(s.min)
        );
    }
    println!();
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let mut pairs = vec![("(a1) in-process scan / ps", &table[0].1, &table[1].1)];
    if binary.is_some() {
        pairs.push(("(a2) sweep-agent / ps", &table[2].1, &table[3].1));
    }
    for (label, sweep, ps) in pairs {
        let r = ratio(sweep.p50, ps.p50);
        println!(
            "{label:<28} p50 ratio {r:.2}, mean ratio {:.2}  (goal <= 1.00: {})",
            ratio(sweep.mean, ps.mean),
            verdict(r <= 1.0)
        );
    }
    let lookup = &table[table.len() - 2].1;
    println!(
        "{:<28} p50 {} ms, p99 {} ms  (goal < 1 ms: {})",
        "(b) point lookup",
        ms(lookup.p50),
        ms(lookup.p99),
        verdict(lookup.p50 < Duration::from_millis(1))
    );
    drop(sleepers);
}
