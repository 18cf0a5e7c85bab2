//! How many short-lived processes `process_events` catches: starts the
//! agent's event sources in-process, runs N processes that live 10 ms each
//! (`sleep 0.01`, each with its own argv[0]), and counts how many execs were
//! caught, how many with their command line and binary read from /proc, and
//! how many exits. Two runs: one after another, and all at once.
//! `cargo bench -p sweep-agent --bench events` (needs root: the process
//! connector needs CAP_NET_ADMIN). `SWEEP_BENCH_PROCS` sets N (default 1000).

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use sweep_agent::config::EventsConfig;
use sweep_agent::events::{proc_connector, Events, State};

fn text(v: Option<&Value>) -> Option<&str> {
    match v {
        Some(Value::Text(t)) => Some(t),
        _ => None,
    }
}

/// (execs, with cmdline and path, exits) among the processes `pids`, whose
/// argv[0] starts with `tag`.
fn caught(events: &Events, pids: &BTreeSet<i64>, tag: &str) -> (usize, usize, usize) {
    let mut rows = Vec::new();
    events
        .scan("process_events", None, &mut rows)
        .expect("process_events");
    let (mut execs, mut full, mut exits) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for r in &rows {
        let syscall = text(r.get("syscall"));
        let Some(Value::Integer(pid)) = r.get("pid") else {
            continue;
        };
        if !pids.contains(pid) {
            continue;
        }
        let cmdline = text(r.get("cmdline")).unwrap_or("");
        match syscall {
            // The child's exec of sleep (its fork is a fork row).
            Some("execve") => {
                execs.insert(*pid);
                if cmdline.starts_with(tag)
                    && text(r.get("path")).is_some_and(|p| p.ends_with("/sleep"))
                {
                    full.insert(*pid);
                }
            }
            Some("exit") => {
                exits.insert(*pid);
            }
            _ => {}
        }
    }
    (execs.len(), full.len(), exits.len())
}

fn run(events: &Events, n: usize, tag: &str, at_once: bool) {
    let started = Instant::now();
    let spawn = |i: usize| -> Child {
        Command::new("sleep")
            .arg0(format!("{tag}-{i}"))
            .arg("0.01")
            .spawn()
            .expect("sleep")
    };
    let mut pids = BTreeSet::new();
    if at_once {
        let children: Vec<Child> = (0..n).map(spawn).collect();
        for mut c in children {
            pids.insert(i64::from(c.id()));
            c.wait().expect("wait");
        }
    } else {
        for i in 0..n {
            let mut c = spawn(i);
            pids.insert(i64::from(c.id()));
            c.wait().expect("wait");
        }
    }
    let ran = started.elapsed();
    // Events trail the processes by the reader's queue: wait until every
    // exit is in, or nothing new came for a second.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = caught(events, &pids, tag);
    let mut still = 0;
    while last.2 < n && still < 5 && Instant::now() < deadline {
        // A lost event never arrives, so "nothing more came for a second"
        // is the measurement's end: the pause is what is waited for.
        std::thread::sleep(Duration::from_millis(200));
        let now = caught(events, &pids, tag);
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    let (execs, full, exits) = last;
    let lost = events
        .source(proc_connector::NAME)
        .map_or(0, |s| s.lost.load(std::sync::atomic::Ordering::Relaxed));
    println!(
        "{:<14} {n} processes of 10 ms in {:>6.2} s: execs caught {execs}/{n}, \
         with cmdline and path {full}/{n}, exits {exits}/{n}; kernel overflows so far {lost}",
        if at_once { "all at once" } else { "one by one" },
        ran.as_secs_f64(),
    );
}

fn main() {
    let n: usize = std::env::var("SWEEP_BENCH_PROCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let events = Events::new(&EventsConfig {
        events_max: 1_000_000,
        ..EventsConfig::default()
    });
    events.start();
    if let Some(s) = events.source(proc_connector::NAME) {
        if let State::Failed(why) = s.state() {
            eprintln!("the process connector is not available here: {why}");
            std::process::exit(1);
        }
    }
    let tag = format!("sweep-bench-{}", std::process::id());
    run(&events, n, &format!("{tag}-seq"), false);
    run(&events, n, &format!("{tag}-par"), true);
    events.stop();
}
