//! The loop, end to end: hunts through a real coordination store (etcd and
//! ZooKeeper, each test on both) to real agents, rows through a real broker,
//! rules to matches, liveness by lease or session.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use sweep_e2e::{agent_query, eventually, ndjson, Backend, Cluster};

fn three_agents(c: &Cluster) -> Vec<sweep_e2e::Proc> {
    let agents = vec![
        c.agent("web-1", &[("role", "web"), ("dc", "sh1")]).unwrap(),
        c.agent("web-2", &[("role", "web"), ("dc", "sh2")]).unwrap(),
        c.agent("db-1", &[("role", "db"), ("dc", "sh1")]).unwrap(),
    ];
    c.wait_agents(&["db-1", "web-1", "web-2"], Duration::from_secs(20))
        .unwrap();
    agents
}

/// The comm name the kernel gives this test process (15 chars at most).
fn own_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim()
        .to_string()
}

fn hunt_returns_true_rows_from_every_agent(backend: Backend) {
    let c = Cluster::start_on(backend).unwrap();
    let _agents = three_agents(&c);
    let me = std::process::id();
    let parent = std::os::unix::process::parent_id();
    let sql = format!("SELECT pid, name, parent FROM processes WHERE pid = {me}");
    let started = Instant::now();
    let out = c.sweep(&["hunt", &sql, "--json", "--timeout", "30s"]);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let rows = ndjson(&out.stdout);
    let mut hosts: Vec<&str> = rows
        .iter()
        .map(|r| r["host_id"].as_str().unwrap())
        .collect();
    hosts.sort();
    assert_eq!(
        hosts,
        ["db-1", "web-1", "web-2"],
        "one row per agent, tagged with its host id"
    );
    for r in &rows {
        assert_eq!(r["pid"], me.to_string());
        assert_eq!(r["name"], own_comm());
        assert_eq!(r["parent"], parent.to_string());
    }
    assert!(stderr.contains("3 of 3 agent(s)"), "{stderr}");
    eprintln!("hunt over three agents took {took:?} from issue to last answer (CLI wall time)");
}

fn agent_started_after_the_hunt_answers_it(backend: Backend) {
    let c = Cluster::start_on(backend).unwrap();
    let _a = c.agent("early-1", &[]).unwrap();
    let _b = c.agent("early-2", &[]).unwrap();
    c.wait_agents(&["early-1", "early-2"], Duration::from_secs(20))
        .unwrap();
    // Issue a hunt that stays live for 5 minutes; the CLI returns once the two
    // live agents answered.
    let out = c.sweep(&[
        "hunt",
        "SELECT hostname FROM system_info",
        "--timeout",
        "20s",
        "--expiry",
        "5m",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("2 of 2 agent(s)"), "{stderr}");
    let hunt_id = stderr
        .split_whitespace()
        .skip_while(|w| *w != "hunt")
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    // An agent that starts now, while the hunt is live, runs it.
    let late = c.agent("late-3", &[]).unwrap();
    let mut last = String::new();
    let rows = eventually(Duration::from_secs(20), || {
        let out = c.sweep(&["results", &hunt_id, "--json"]);
        last = String::from_utf8_lossy(&out.stderr).to_string();
        let rows = ndjson(&out.stdout);
        (out.status.code() == Some(0) && rows.len() == 3).then_some(rows)
    })
    .unwrap_or_else(|| {
        panic!(
            "late-3 did not answer the live hunt: {last}\n{}",
            late.log_text()
        )
    });
    let mut hosts: Vec<&str> = rows
        .iter()
        .map(|r| r["host_id"].as_str().unwrap())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["early-1", "early-2", "late-3"]);
    for r in &rows {
        assert!(!r["hostname"].as_str().unwrap().is_empty());
    }
}

fn dead_agents_leave_the_fleet(backend: Backend) {
    let c = Cluster::start_on(backend).unwrap();
    let killed = c.agent("killed", &[]).unwrap();
    let mut stopped = c.agent("stopped", &[]).unwrap();
    let stays = c.agent("stays", &[]).unwrap();
    if let Err(e) = c.wait_agents(&["killed", "stays", "stopped"], Duration::from_secs(20)) {
        panic!(
            "{e}\n--- killed:\n{}\n--- stopped:\n{}\n--- stays:\n{}",
            killed.log_text(),
            stopped.log_text(),
            stays.log_text()
        );
    }

    // SIGTERM revokes the lease: gone at once.
    let t = Instant::now();
    stopped.signal(15);
    assert!(
        stopped.wait_exit(Duration::from_secs(10)),
        "agent did not exit on SIGTERM"
    );
    c.wait_agents(&["killed", "stays"], Duration::from_secs(2))
        .unwrap();
    eprintln!("SIGTERM: gone from `sweep agents` after {:?}", t.elapsed());

    // SIGKILL leaves the lease to lapse: gone within the TTL (3 s here).
    let t = Instant::now();
    killed.signal(9);
    c.wait_agents(
        &["stays"],
        Duration::from_secs(3) + Duration::from_millis(1500),
    )
    .unwrap();
    eprintln!(
        "SIGKILL: gone from `sweep agents` after {:?} (TTL 3s)",
        t.elapsed()
    );
}

fn a_rule_fires_on_a_hunt_row(backend: Backend) {
    let c = Cluster::start_on(backend).unwrap();
    let rules = c.rules_dir(
        r#"
[[rule]]
id = "e2e_sleeper"
title = "The test's marked sleep process"
severity = "high"
query = "hunt:*"
condition = "name = 'sleep' AND cmdline LIKE '%4242.5%'"
"#,
    );
    let _rules = c.rules(&rules).unwrap();
    let _agent = c.agent("web-1", &[("role", "web")]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    let mut sleeper = Command::new("sleep").arg("4242.5").spawn().unwrap();
    let out = c.sweep(&[
        "hunt",
        "SELECT pid, name, cmdline FROM processes WHERE name = 'sleep'",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = eventually(Duration::from_secs(30), || {
        let out = c.sweep(&["matches", "--json"]);
        ndjson(&out.stdout)
            .into_iter()
            .find(|m| m["rule_id"] == "e2e_sleeper")
    });
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let m = found.expect("no match for e2e_sleeper");
    assert_eq!(m["host"], "web-1");
    assert_eq!(m["severity"], "high");
    assert_eq!(m["row"]["pid"], sleeper.id().to_string());
    assert!(m["query"].as_str().unwrap().starts_with("hunt:"));
    // The table view shows it too.
    let table = String::from_utf8_lossy(&c.sweep(&["matches"]).stdout).to_string();
    assert!(
        table.contains("e2e_sleeper") && table.contains("web-1"),
        "{table}"
    );
}

fn the_guard_refuses_before_anything_runs(backend: Backend) {
    let c = Cluster::start_on(backend).unwrap();
    let _agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    for (sql, why) in [
        ("DELETE FROM processes", "only SELECT"),
        ("ATTACH DATABASE '/tmp/x.db' AS x", "ATTACH"),
        ("SELECT 1; SELECT 2", "exactly one statement"),
    ] {
        let out = c.sweep(&["hunt", sql]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{sql}: {stderr}");
        assert!(stderr.contains(why), "{sql}: {stderr}");
        let out = agent_query(sql);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{sql} ran locally");
        assert!(stderr.contains(why), "{sql}: {stderr}");
        assert!(out
            .stdout
            .iter()
            .all(|b| b.is_ascii_whitespace() || *b == b'[' || *b == b']'));
    }
    // Nothing was written for agents to run.
    assert_eq!(c.keys_under("/sweep/hunts/"), Vec::<String>::new());
}

#[test]
fn table_values_match_the_host() {
    // users: root has uid 0.
    let out = agent_query("SELECT username, uid, directory FROM users WHERE uid = 0");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["username"], "root");
    assert_eq!(rows[0]["uid"], 0);
    // listening_ports: a port this test listens on, with this test's pid.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = agent_query(&format!(
        "SELECT pid, port, address, protocol FROM listening_ports WHERE port = {port}"
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["pid"], std::process::id());
    assert_eq!(rows[0]["address"], "127.0.0.1");
    assert_eq!(rows[0]["protocol"], 6);
    // processes: this test's own pid, name and parent.
    let me = std::process::id();
    let out = agent_query(&format!(
        "SELECT name, parent FROM processes WHERE pid = {me}"
    ));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["name"], own_comm());
    assert_eq!(rows[0]["parent"], std::os::unix::process::parent_id());
    drop(listener);
}

fn discovery_queries_narrow_a_hunt(backend: Backend) {
    let c = Cluster::start_on(backend).unwrap();
    let _a = c.agent("web-1", &[]).unwrap();
    let _b = c.agent("web-2", &[]).unwrap();
    c.wait_agents(&["web-1", "web-2"], Duration::from_secs(20))
        .unwrap();
    // osquery_info.instance_id starts with the host id, so this discovery
    // query finds something on web-1 only.
    let discovery = "SELECT 1 FROM osquery_info WHERE instance_id LIKE 'web-1-%'";
    let out = c.sweep(&[
        "hunt",
        "SELECT 5 AS five",
        "--discovery",
        discovery,
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let rows = ndjson(&out.stdout);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["host_id"], "web-1");
    assert!(
        stderr.contains("web-2: skipped: discovery returned no rows"),
        "{stderr}"
    );
    assert!(stderr.contains("1 skipped by discovery"), "{stderr}");
    // The guard covers discovery queries too.
    let out = c.sweep(&["hunt", "SELECT 1", "--discovery", "DELETE FROM users"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("discovery query"));
}

fn repeated_matches_are_summarised_with_a_count(backend: Backend) {
    let c = Cluster::start_on(backend).unwrap();
    let rules = c.rules_dir(
        r#"
[[rule]]
id = "e2e_repeat"
title = "The same row again and again"
severity = "low"
query = "hunt:*"
condition = "marker = 'again'"
suppress_for = "4s"
"#,
    );
    let _rules = c.rules(&rules).unwrap();
    let _agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    for _ in 0..3 {
        let out = c.sweep(&["hunt", "SELECT 'again' AS marker"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The first match at once, then one summary when the window closes.
    let all = eventually(Duration::from_secs(30), || {
        let out = c.sweep(&["matches", "--json"]);
        let ms: Vec<_> = ndjson(&out.stdout)
            .into_iter()
            .filter(|m| m["rule_id"] == "e2e_repeat")
            .collect();
        (ms.len() >= 2).then_some(ms)
    })
    .expect("no summary match");
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0]["count"], 1);
    assert_eq!(all[1]["count"], 3);
    assert!(all[1]["first_seen"].as_u64() <= all[1]["last_seen"].as_u64());
    assert_eq!(all[1]["host"], "web-1");
}

sweep_e2e::on_each_backend!(
    hunt_returns_true_rows_from_every_agent,
    agent_started_after_the_hunt_answers_it,
    dead_agents_leave_the_fleet,
    a_rule_fires_on_a_hunt_row,
    the_guard_refuses_before_anything_runs,
    discovery_queries_narrow_a_hunt,
    repeated_matches_are_summarised_with_a_count,
);
