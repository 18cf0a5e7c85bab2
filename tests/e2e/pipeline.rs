//! Nothing lost, nothing stuck, end to end on a real etcd and a real broker:
//! exact `OR` answers through a hunt, a schedule that keeps its cadence
//! through a broker outage, a record the broker refuses for good that does
//! not block the ones behind it, `kill -9` with rows waiting, a large hunt
//! that leaves the agent as small as it was, and SIGTERM during a long query.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use sweep_e2e::{eventually, http_get, hunt, ndjson, ok, Cluster, Proc};

fn heartbeat(c: &Cluster, host: &str) -> Option<Value> {
    let out = c.sweep(&["agents", "--json"]);
    ndjson(&out.stdout)
        .into_iter()
        .find(|a| a["host_id"] == host)
}

fn tail(c: &Cluster, query: &str) -> Vec<Value> {
    let out = c.sweep(&["tail", "--query", query, "--json"]);
    ok(&out);
    ndjson(&out.stdout)
}

/// The rows of a hunt, once every expected agent answered.
fn results(c: &Cluster, id: &str, rows: usize, agent: &Proc) -> Vec<Value> {
    eventually(Duration::from_secs(60), || {
        let out = c.sweep(&["results", id, "--json"]);
        let got = ndjson(&out.stdout);
        (out.status.code() == Some(0) && got.len() >= rows).then_some(got)
    })
    .unwrap_or_else(|| panic!("hunt {id}: fewer than {rows} rows\n{}", agent.log_text()))
}

/// The agent's resident size, from /proc.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn an_or_across_pushed_down_columns_returns_every_row() {
    let c = Cluster::start().unwrap();
    let _agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    let out = c.sweep(&[
        "hunt",
        "SELECT uid, username FROM users WHERE uid = 0 OR username = 'nobody'",
        "--json",
    ]);
    ok(&out);
    let names: BTreeSet<String> = ndjson(&out.stdout)
        .iter()
        .map(|r| r["username"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        names,
        ["nobody", "root"].map(String::from).into(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_schedule_keeps_its_cadence_through_a_broker_outage() {
    let mut c = Cluster::start().unwrap();
    let hosts = ["web-1", "web-2"];
    let agents: Vec<Proc> = hosts.iter().map(|h| c.agent(h, &[]).unwrap()).collect();
    c.wait_agents(&hosts, Duration::from_secs(20)).unwrap();
    let logs = || {
        agents
            .iter()
            .map(|a| a.log_text())
            .collect::<Vec<_>>()
            .join("\n")
    };
    ok(&c.sweep(&[
        "schedule",
        "add",
        "tick",
        "SELECT 1 AS one",
        "--interval",
        "1s",
        "--snapshot",
    ]));
    eventually(Duration::from_secs(90), || {
        (tail(&c, "tick").len() >= 6).then_some(())
    })
    .unwrap_or_else(|| panic!("no ticks\n{}", logs()));

    c.stop_broker();
    let outage = Instant::now();
    // Twenty runs on each agent while the broker is away, seen in the spool
    // depth each reports (heartbeats go to etcd, which is up).
    eventually(Duration::from_secs(60), || {
        hosts
            .iter()
            .all(|h| {
                heartbeat(&c, h)
                    .and_then(|hb| hb["spool_depth"].as_u64())
                    .is_some_and(|d| d >= 20)
            })
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the spools did not grow\n{}", logs()));
    let away = outage.elapsed();
    c.start_broker().unwrap();

    let rows = eventually(Duration::from_secs(90), || {
        let drained = hosts.iter().all(|h| {
            heartbeat(&c, h)
                .and_then(|hb| hb["spool_depth"].as_u64())
                .is_some_and(|d| d == 0)
        });
        let rows = tail(&c, "tick");
        (drained && rows.len() >= 50).then_some(rows)
    })
    .unwrap_or_else(|| panic!("the spools never drained\n{}", logs()));
    for host in hosts {
        let times: Vec<u64> = rows
            .iter()
            .filter(|r| r["hostIdentifier"] == host)
            .map(|r| r["unixTime"].as_u64().unwrap())
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "{host}: out of order: {times:?}"
        );
        let widest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        eprintln!(
            "{host}: {} rows over {} s, broker away {away:?}, widest gap {widest} s",
            times.len(),
            times.last().unwrap() - times[0]
        );
        assert!(times.len() >= 25, "{host}: only {} rows", times.len());
        assert!(
            widest <= 2,
            "{host}: a gap of {widest} s in a 1 s schedule: {times:?}\n{}",
            logs()
        );
    }
}

#[test]
fn a_record_the_broker_refuses_is_quarantined_and_the_rest_flow() {
    let c = Cluster::start().unwrap();
    // The agent keeps every record under the broker's default 1 MB; a
    // producer limited to 100 kB stands for a broker configured smaller, so
    // a 110 kB value makes a record it refuses.
    let agent = c
        .agent_configured(
            "web-1",
            &[],
            "wall_time = \"2s\"\nmax_value_bytes = 0\n",
            "[kafka.properties]\n\"message.max.bytes\" = \"100000\"\n",
        )
        .unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    c.put_hunt(
        hunt("too-big", "SELECT printf('%.*c', 110000, 'x') AS big"),
        Some(c.signer()),
    );
    c.put_hunt(
        hunt("after", "SELECT value FROM json_each('[1,2,3]')"),
        Some(c.signer()),
    );
    let rows = results(&c, "after", 3, &agent);
    let values: Vec<&str> = rows.iter().map(|r| r["value"].as_str().unwrap()).collect();
    assert_eq!(values, ["1", "2", "3"]);
    let quarantine = c.state_dir("web-1").join("quarantine.jsonl");
    let entries: Vec<Value> = ndjson(&std::fs::read(&quarantine).unwrap());
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["query"], "hunt:too-big");
    let error = entries[0]["error"].as_str().unwrap();
    assert!(error.to_lowercase().contains("too large"), "{error}");
    assert!(entries[0]["record"]["value"].as_str().unwrap().len() > 110_000);
    let counted = eventually(Duration::from_secs(10), || {
        let n = heartbeat(&c, "web-1")?["counters"]["records_quarantined"].as_u64()?;
        (n == 1).then_some(())
    });
    assert!(counted.is_some(), "the heartbeat does not count it");
    assert!(agent.log_text().contains("quarantined"));
    // The operator hears of it: the status counts a row that never came.
    let out = c.sweep(&["results", "too-big"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("web-1: sent 1 row(s) but 0 arrived"),
        "{stderr}"
    );
}

#[test]
fn kill_9_while_rows_wait_and_while_they_are_delivered_loses_nothing_and_floods_nothing() {
    const FILES: usize = 12_000;
    // Listing 12,000 files takes longer than the 2 s the other tests allow.
    const LIMITS: &str = "wall_time = \"60s\"\n";
    let mut c = Cluster::start().unwrap();
    let mut agent = c.agent_with("web-1", &[], LIMITS).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    ok(&c.sweep(&["hunt", "SELECT 1 AS warmup"]));
    let watched = tempfile::tempdir().unwrap();
    for i in 0..FILES {
        std::fs::write(watched.path().join(format!("f{i:05}")), "").unwrap();
    }
    let sql = format!(
        "SELECT filename FROM file WHERE directory = '{}'",
        watched.path().display()
    );
    c.stop_broker();
    ok(&c.sweep(&["schedule", "add", "files", &sql, "--interval", "2s"]));
    // The first run's `added` rows wait in the spool: kill -9 now.
    eventually(Duration::from_secs(60), || {
        let depth = heartbeat(&c, "web-1")?["spool_depth"].as_u64()?;
        (depth >= FILES as u64).then_some(())
    })
    .unwrap_or_else(|| panic!("rows never spooled\n{}", agent.log_text()));
    agent.signal(9);
    assert!(agent.wait_exit(Duration::from_secs(10)));

    // Broker back, agent back: kill -9 again as soon as delivery is under
    // way, the moment the spool's cursor first moves (one batch of 5,000
    // acknowledged, the rest in flight or waiting).
    let cursor = c.state_dir("web-1").join("spool").join("cursor.json");
    let before = std::fs::read(&cursor).ok();
    c.start_broker().unwrap();
    let mut agent = c.agent_with("web-1", &[], LIMITS).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read(&cursor).ok() == before {
        assert!(
            Instant::now() < deadline,
            "delivery never started\n{}",
            agent.log_text()
        );
        // The poll interval of a wait bounded by `deadline`; tight because the
        // point is to land the kill inside the delivery.
        std::thread::sleep(Duration::from_millis(2));
    }
    agent.signal(9);
    assert!(agent.wait_exit(Duration::from_secs(10)));
    let delivered_at_kill = tail(&c, "files").len();

    let agent = c.agent_with("web-1", &[], LIMITS).unwrap();
    // One more file after the restarts: the only new `added` row expected.
    std::fs::write(watched.path().join("late"), "").unwrap();
    let rows = eventually(Duration::from_secs(120), || {
        let rows = tail(&c, "files");
        rows.iter()
            .any(|r| r["columns"]["filename"] == "late")
            .then_some(rows)
    })
    .unwrap_or_else(|| panic!("no rows after the restarts\n{}", agent.log_text()));
    // Every file added; a file seen twice only as the same record delivered
    // again (at-least-once: same run, same epoch and counter), never as a
    // second `added` from a new run.
    let mut runs: std::collections::BTreeMap<String, BTreeSet<(u64, u64)>> = Default::default();
    for r in rows.iter().filter(|r| r["action"] == "added") {
        let name = r["columns"]["filename"].as_str().unwrap().to_string();
        let run = (r["epoch"].as_u64().unwrap(), r["counter"].as_u64().unwrap());
        runs.entry(name).or_default().insert(run);
    }
    let mut want: BTreeSet<String> = (0..FILES).map(|i| format!("f{i:05}")).collect();
    want.insert("late".into());
    let got: BTreeSet<String> = runs.keys().cloned().collect();
    assert_eq!(
        got.len(),
        want.len(),
        "missing: {:?}",
        want.difference(&got).take(5).collect::<Vec<_>>()
    );
    assert_eq!(got, want);
    let flooded: Vec<_> = runs.iter().filter(|(_, r)| r.len() > 1).take(5).collect();
    assert!(
        flooded.is_empty(),
        "added again by a later run: {flooded:?}"
    );
    let total = rows.iter().filter(|r| r["action"] == "added").count();
    eprintln!(
        "{} files, {total} added records ({} delivered before the second kill, {} sent twice)",
        want.len(),
        delivered_at_kill,
        total - want.len()
    );
}

#[test]
fn a_large_hunt_then_a_small_one_and_the_agent_is_as_small_as_before() {
    let c = Cluster::start().unwrap();
    let agent = c
        .agent_with(
            "web-1",
            &[],
            "wall_time = \"120s\"\nmax_rows = 1000000\nmax_bytes = 1073741824\n",
        )
        .unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    ok(&c.sweep(&["hunt", "SELECT 1 AS warmup"]));
    let idle = rss_kib(agent.pid());
    // More than 100,000 rows (osquery's default is no row limit).
    let out = c.sweep(&[
        "hunt",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 120000) \
         SELECT x, printf('%080d', x) AS pad FROM c",
        "--timeout",
        "120s",
        "--json",
    ]);
    ok(&out);
    assert_eq!(ndjson(&out.stdout).len(), 120_000);
    let out = c.sweep(&["hunt", "SELECT 2 AS small", "--json"]);
    ok(&out);
    assert_eq!(ndjson(&out.stdout).len(), 1);
    let after = rss_kib(agent.pid());
    eprintln!("agent RSS: {idle} KiB idle, {after} KiB after 120,000 rows");
    assert!(
        after <= idle + 20 * 1024,
        "RSS {after} KiB after, {idle} KiB before"
    );
}

#[test]
fn sigterm_during_a_long_query_stops_within_the_shutdown_timeout() {
    let c = Cluster::start().unwrap();
    let mut agent = c.agent_with("web-1", &[], "wall_time = \"60s\"\n").unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    c.put_hunt(
        hunt(
            "forever",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c",
        ),
        Some(c.signer()),
    );
    eventually(Duration::from_secs(20), || {
        agent.log_text().contains("running hunt").then_some(())
    })
    .expect("the hunt never started");
    let asked = Instant::now();
    agent.signal(15);
    assert!(
        agent.wait_exit(Duration::from_secs(10)),
        "still running 10 s after SIGTERM\n{}",
        agent.log_text()
    );
    let took = asked.elapsed();
    eprintln!("exited {took:?} after SIGTERM");
    // Gone from the fleet at once: the lease was revoked, not left to lapse.
    assert!(
        !c.live_agents().contains(&"web-1".to_string()),
        "still listed after exit"
    );
}

#[test]
fn the_rules_consumer_skips_a_poison_record_and_goes_on() {
    let c = Cluster::start().unwrap();
    let dir = c.rules_dir(
        r#"
[[rule]]
id = "e2e_marker"
title = "A marked row"
severity = "low"
query = "hunt:*"
condition = "marker = 'after-the-poison'"
"#,
    );
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    // The topic exists once the agent has answered something.
    ok(&c.sweep(&["hunt", "SELECT 1 AS warmup"]));
    // Garbage first, keyed like an agent's records so it sits in the same
    // partition as the row after it.
    c.produce_raw("sweep.results", "web-1", b"\x00{not json at all");
    let rules = c.rules(&dir).unwrap();
    ok(&c.sweep(&["hunt", "SELECT 'after-the-poison' AS marker"]));
    let found = eventually(Duration::from_secs(60), || {
        let out = c.sweep(&["matches", "--json"]);
        ndjson(&out.stdout)
            .into_iter()
            .find(|m| m["rule_id"] == "e2e_marker")
    });
    assert!(
        found.is_some(),
        "no match after the poison record\n{}\n{}",
        rules.log_text(),
        agent.log_text()
    );
    // The poison sits in sweep.results, the marker's row in sweep.hunts:
    // another partition, maybe another worker, so no order between them.
    let skipped = eventually(Duration::from_secs(30), || {
        rules
            .log_text()
            .contains("skipping an undecodable record")
            .then_some(())
    });
    assert!(skipped.is_some(), "{}", rules.log_text());
    let addr = rules.admin_addr().expect("the rules admin address");
    let metrics = http_get(&addr, "/metrics");
    assert!(
        metrics.contains("sweep_rules_records_skipped_total{reason=\"undecodable\"} 1"),
        "{metrics}"
    );
}
