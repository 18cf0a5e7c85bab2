//! Event tables end to end on the real kernel, a real etcd and broker: a
//! process that lives 50 ms with a connection on its standard streams is in
//! `process_events` and `socket_events`, and a rule on it matches within
//! 15 s, while a `processes` snapshot every 10 s never sees it. Events over
//! `events_max` are dropped and counted.

use std::io::Read;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sweep_e2e::{eventually, http_get, ndjson, ok, Cluster};

fn tail(c: &Cluster, query: &str) -> Vec<Value> {
    let out = c.sweep(&["tail", "--query", query, "--json"]);
    ok(&out);
    ndjson(&out.stdout)
}

/// A row's columns, whichever way the command printed it.
fn columns(row: &Value) -> &Value {
    row.get("columns").unwrap_or(row)
}

fn mentions(rows: &[Value], marker: &str) -> bool {
    rows.iter().any(|r| columns(r).to_string().contains(marker))
}

#[test]
fn a_50ms_process_with_a_connection_is_caught_by_events_and_missed_by_snapshots() {
    let c = Cluster::start().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let marker = format!("sweep-e2e-shortlived-{}", std::process::id());
    let rules = c.rules_dir(&format!(
        r#"
[[rule]]
id = "e2e_stdio_socket"
title = "A process whose standard input is a connection"
severity = "high"
query = "proc_events"
condition = "fd0_remote = '127.0.0.1:{port}' AND cmdline LIKE '{marker}%'"
"#
    ));
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    let rules_proc = c.rules(&rules).unwrap();
    let logs = || format!("{}\n{}", agent.log_text(), rules_proc.log_text());
    for (name, sql, snapshot) in [
        ("snap_procs", "SELECT pid, cmdline FROM processes", true),
        (
            "proc_events",
            "SELECT pid, path, cmdline, parent, syscall, fd0_remote FROM process_events",
            false,
        ),
        (
            "sock_events",
            "SELECT pid, action, remote_address, remote_port, status FROM socket_events",
            false,
        ),
    ] {
        let mut args = vec!["schedule", "add", name, sql, "--interval", "10s"];
        if snapshot {
            args.push("--snapshot");
        }
        ok(&c.sweep(&args));
    }
    // Start right after a snapshot of the processes: the next is 10 s away.
    eventually(Duration::from_secs(60), || {
        (!tail(&c, "snap_procs").is_empty()).then_some(())
    })
    .unwrap_or_else(|| panic!("no processes snapshot\n{}", logs()));
    let snapshots_before = tail(&c, "snap_procs")
        .iter()
        .filter_map(|r| r["unixTime"].as_u64())
        .collect::<std::collections::BTreeSet<_>>()
        .len();

    // The reverse-shell shape: connect, put the connection on 0-2, exec.
    let started = Instant::now();
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "exec 0<>/dev/tcp/127.0.0.1/{port} 1>&0 2>&0; exec -a {marker} sleep 0.05"
        ))
        .status()
        .unwrap();
    let lived = started.elapsed();
    assert!(status.success());
    let (mut served, _) = listener.accept().unwrap();
    let mut nothing = Vec::new();
    served.read_to_end(&mut nothing).unwrap();

    // Fifteen seconds from the process's start to its match.
    let matched = eventually(
        Duration::from_secs(15).saturating_sub(started.elapsed()),
        || {
            let out = c.sweep(&["matches", "--json"]);
            ndjson(&out.stdout)
                .into_iter()
                .find(|m| m["rule_id"] == "e2e_stdio_socket")
        },
    );
    let to_match = started.elapsed();
    let matched = matched.unwrap_or_else(|| panic!("no match within 15 s\n{}", logs()));
    assert!(matched.to_string().contains(&marker), "{matched}");
    println!("process lived {lived:?}; its match arrived {to_match:?} after it started");

    // Its rows: the exec with the cmdline, the connection with the peer.
    let execs = tail(&c, "proc_events");
    let exec = execs
        .iter()
        .map(columns)
        .find(|r| {
            r["cmdline"]
                .as_str()
                .is_some_and(|c| c.starts_with(&marker))
        })
        .unwrap_or_else(|| panic!("no exec row\n{execs:?}"));
    assert_eq!(exec["syscall"], "execve");
    assert_eq!(exec["fd0_remote"], format!("127.0.0.1:{port}"));
    assert!(exec["path"].as_str().unwrap().ends_with("/sleep"), "{exec}");
    let pid = exec["pid"].as_str().unwrap().to_string();
    let port_text = port.to_string();
    let socks = eventually(Duration::from_secs(30), || {
        let rows = tail(&c, "sock_events");
        rows.iter()
            .map(columns)
            .any(|r| r["remote_port"].as_str() == Some(&port_text) && r["pid"] == pid)
            .then_some(rows)
    })
    .unwrap_or_else(|| panic!("no socket row for pid {pid} to port {port}\n{}", logs()));
    assert!(socks.iter().map(columns).any(|r| {
        r["remote_port"].as_str() == Some(&port_text)
            && r["remote_address"] == "127.0.0.1"
            && r["status"] == "closed"
    }));

    // A hunt reads the whole buffer.
    let out = c.sweep(&[
        "hunt",
        &format!("SELECT pid, cmdline FROM process_events WHERE cmdline LIKE '{marker}%'"),
        "--json",
    ]);
    ok(&out);
    assert!(
        mentions(&ndjson(&out.stdout), &marker),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The next snapshots come and go without it.
    eventually(Duration::from_secs(30), || {
        let times = tail(&c, "snap_procs")
            .iter()
            .filter_map(|r| r["unixTime"].as_u64())
            .collect::<std::collections::BTreeSet<_>>();
        (times.len() > snapshots_before).then_some(())
    })
    .unwrap_or_else(|| panic!("no later snapshot\n{}", logs()));
    assert!(
        !mentions(&tail(&c, "snap_procs"), &marker),
        "a 10 s processes snapshot saw a 50 ms process"
    );

    let metrics = http_get(&agent.admin_addr().unwrap(), "/metrics");
    assert!(
        metrics.contains("sweep_agent_event_source_active{source=\"process_connector\"} 1"),
        "{metrics}"
    );
}

#[test]
fn events_over_events_max_are_dropped_and_counted_and_file_writes_name_the_writer() {
    let c = Cluster::start().unwrap();
    let watched = c.dir.path().join("watched");
    std::fs::create_dir_all(&watched).unwrap();
    let agent = c
        .agent_configured(
            "web-1",
            &[],
            "",
            &format!(
                "[events]\nevents_max = 50\n[events.file_paths]\nwatched = [\"{}/%%\"]\n",
                watched.display()
            ),
        )
        .unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();

    // A file written by another process: file_events names it.
    let target = watched.join("hosts");
    let mut tee = Command::new("tee")
        .arg(&target)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let writer = tee.id();
    std::io::Write::write_all(
        &mut tee.stdin.take().unwrap(),
        b"127.0.0.1 update.example\n",
    )
    .unwrap();
    assert!(tee.wait().unwrap().success());
    let sql = format!(
        "SELECT target_path, action, pid, sha256 FROM file_events WHERE target_path = '{}' AND action = 'UPDATED'",
        target.display()
    );
    let row = eventually(Duration::from_secs(20), || {
        let out = c.sweep(&["hunt", &sql, "--json"]);
        ndjson(&out.stdout).into_iter().next()
    })
    .unwrap_or_else(|| {
        panic!(
            "no file event for {}\n{}",
            target.display(),
            agent.log_text()
        )
    });
    let row = columns(&row);
    assert_eq!(row["pid"], writer.to_string(), "{row}");
    let expected = Command::new("sha256sum").arg(&target).output().unwrap();
    let expected = String::from_utf8_lossy(&expected.stdout);
    assert_eq!(
        Some(row["sha256"].as_str().unwrap()),
        expected.split_whitespace().next()
    );

    for _ in 0..200 {
        assert!(Command::new("true").status().unwrap().success());
    }
    let addr = agent.admin_addr().unwrap();
    let dropped = eventually(Duration::from_secs(20), || {
        let metrics = http_get(&addr, "/metrics");
        metrics
            .lines()
            .find(|l| {
                l.starts_with("sweep_agent_events_dropped_total")
                    && l.contains("reason=\"events_max\"")
                    && l.contains("source=\"process_connector\"")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .filter(|n| *n >= 150)
    });
    assert!(
        dropped.is_some(),
        "{}\n{}",
        http_get(&addr, "/metrics"),
        agent.log_text()
    );
    let out = c.sweep(&["hunt", "SELECT count(*) AS n FROM process_events", "--json"]);
    ok(&out);
    let rows = ndjson(&out.stdout);
    let n: u64 = columns(&rows[0])["n"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert!(n <= 50, "{n} events buffered over events_max = 50");
    let out = c.sweep(&[
        "hunt",
        "SELECT events, active FROM osquery_events WHERE name = 'process_events'",
        "--json",
    ]);
    ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"active\":\"1\""),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
