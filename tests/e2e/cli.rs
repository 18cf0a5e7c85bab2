//! The controller's command-line habits: errors that name what failed and
//! what to do (an unreachable etcd, ZooKeeper or broker, a hunt that targets nobody),
//! said at once; a hunt's rows in the format asked for, to standard output
//! or to `--output FILE` in the format its name says.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sweep_e2e::{bin, free_port, ndjson, ok, Cluster};

/// `sweep` with only these connection settings (no config file, no key):
/// the store named by `store_var` (`SWEEP_ETCD`, `SWEEP_ZOOKEEPER`) at
/// `store`, the broker at `kafka`.
fn sweep_at(store_var: &str, store: &str, kafka: &str, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(bin("sweep"))
        .args(args)
        .env_remove("SWEEP_ETCD")
        .env_remove("SWEEP_ZOOKEEPER")
        .env_remove("SWEEP_COORDINATION")
        .env(store_var, store)
        .env("SWEEP_KAFKA", kafka)
        .env_remove("SWEEP_CONFIG")
        .env_remove("SWEEP_SIGNING_KEY")
        .env_remove("SWEEP_PREFIX")
        .stdin(Stdio::null())
        .output()
        .expect("running sweep");
    (out, started.elapsed())
}

#[test]
fn an_unreachable_etcd_or_broker_is_named_with_what_to_do() {
    // Free ports with nothing listening.
    let etcd = format!("http://127.0.0.1:{}", free_port());
    let kafka = format!("127.0.0.1:{}", free_port());
    for args in [
        &["agents"][..],
        &["hunt", "SELECT 1"],
        &["schedule", "list"],
    ] {
        let (out, took) = sweep_at("SWEEP_ETCD", &etcd, &kafka, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(took < Duration::from_secs(10), "{args:?} took {took:?}");
        assert!(
            stderr.contains(&format!("Error: cannot reach etcd at {etcd}: ")),
            "{stderr}"
        );
        assert!(stderr.contains("Connection refused"), "{stderr}");
        assert!(
            stderr.contains("is etcd running there? `ops/quickstart` starts one")
                && stderr.contains("--etcd URL")
                && stderr.contains("SWEEP_ETCD")
                && stderr.contains("--config"),
            "{stderr}"
        );
        // One line of reason, not a dump of the client's error types.
        assert!(
            !stderr.contains("tonic") && !stderr.contains("grpc"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().filter(|l| l.contains("etcd")).count(), 2);
    }
    // The broker, likewise (its probe waits a few seconds).
    let (out, took) = sweep_at("SWEEP_ETCD", &etcd, &kafka, &["tail"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(
        stderr.contains(&format!(
            "Error: cannot reach the Kafka broker at {kafka}: "
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("--kafka HOST:PORT") && stderr.contains("SWEEP_KAFKA"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_zookeeper_is_named_with_what_to_do() {
    let zk = format!("127.0.0.1:{}", free_port());
    let kafka = format!("127.0.0.1:{}", free_port());
    for args in [&["agents"][..], &["hunt", "SELECT 1"], &["pack", "list"]] {
        let (out, took) = sweep_at("SWEEP_ZOOKEEPER", &zk, &kafka, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(took < Duration::from_secs(10), "{args:?} took {took:?}");
        // Giving ZooKeeper's servers chose it: no word of etcd.
        assert!(
            stderr.contains(&format!("Error: cannot reach ZooKeeper at {zk}: ")),
            "{stderr}"
        );
        assert!(stderr.contains("Connection refused"), "{stderr}");
        assert!(
            stderr.contains("is ZooKeeper running there? `ops/quickstart --zookeeper` starts one")
                && stderr.contains("--zookeeper HOST:PORT")
                && stderr.contains("SWEEP_ZOOKEEPER"),
            "{stderr}"
        );
        assert!(!stderr.contains("etcd"), "{stderr}");
    }
}

#[test]
fn a_hunt_that_targets_no_live_agent_says_so_at_once() {
    let c = Cluster::start().unwrap();
    let _agent = c.agent("web-1", &[("role", "web")]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();

    for (flag, value, shown) in [
        ("--hosts", "nosuch", "hosts=nosuch"),
        ("--labels", "role=db", "labels=role=db"),
    ] {
        let started = Instant::now();
        let out = c.sweep(&["hunt", "SELECT 1", flag, value, "--timeout", "60s"]);
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(took < Duration::from_secs(10), "took {took:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "Error: no live agent matches the targets ({shown}); 1 agent is live; the hunt was not sent"
            )),
            "{stderr}"
        );
        assert!(
            stderr.contains("`sweep agents`") && stderr.contains("--expect-file"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "no rows, no table");
    }
    assert!(
        c.keys_under("/sweep/hunts/").is_empty(),
        "nothing was written"
    );

    // A host that is expected is waited for, live or not.
    let hosts = c.dir.path().join("hosts.txt");
    std::fs::write(&hosts, "nosuch\n").unwrap();
    let out = c.sweep(&[
        "hunt",
        "SELECT 1",
        "--hosts",
        "nosuch",
        "--expect-file",
        hosts.to_str().unwrap(),
        "--timeout",
        "2s",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("nosuch: did not answer within 2s"),
        "{stderr}"
    );
    assert_eq!(c.keys_under("/sweep/hunts/").len(), 1);
}

/// Fields of RFC 4180 CSV: quoted fields may hold commas, doubled quotes
/// and line breaks; records end with CRLF. Written here, apart from the
/// controller's writer, to check it.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "records end with CRLF: {text:?}");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            '\n' => panic!("a bare LF outside quotes: {text:?}"),
            c => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && record.is_empty(),
        "the last record ends: {text:?}"
    );
    records
}

#[test]
fn hunt_rows_come_in_the_format_asked_for() {
    let c = Cluster::start().unwrap();
    let _a = c.agent("web-1", &[]).unwrap();
    let _b = c.agent("web-2", &[]).unwrap();
    c.wait_agents(&["web-1", "web-2"], Duration::from_secs(20))
        .unwrap();
    // Text CSV must quote: a comma, quotes, a line break.
    let sql = "SELECT 'a,b' AS comma, 'say \"hi\"' AS quote, 'two' || char(10) || 'lines' AS text";

    let rows = c.dir.path().join("rows.csv");
    let out = c.sweep(&["hunt", sql, "--output", rows.to_str().unwrap()]);
    ok(&out);
    assert!(out.stdout.is_empty(), "the rows went to the file");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("rows in {}", rows.display())),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&rows).unwrap();
    let records = parse_csv(&text);
    assert_eq!(records.len(), 3, "a header and two rows: {text:?}");
    assert_eq!(records[0], ["host_id", "comma", "quote", "text"]);
    for (record, host) in records[1..].iter().zip(["web-1", "web-2"]) {
        assert_eq!(record, &[host, "a,b", "say \"hi\"", "two\nlines"]);
    }

    // A JSON array on standard output; --json is still NDJSON.
    let out = c.sweep(&["hunt", sql, "--format", "json"]);
    ok(&out);
    let array: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(array.len(), 2, "{array:?}");
    assert_eq!(array[0]["host_id"], "web-1");
    assert_eq!(array[1]["text"], "two\nlines");
    let out = c.sweep(&["hunt", sql, "--json"]);
    ok(&out);
    assert_eq!(ndjson(&out.stdout), array);

    // Other commands take --format too.
    let out = c.sweep(&["agents", "--format", "csv"]);
    ok(&out);
    let agents = parse_csv(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(agents[0][0], "host_id");
    assert_eq!(agents.len(), 3, "{agents:?}");
    let out = c.sweep(&["agents", "--format", "json"]);
    ok(&out);
    let array: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(array.len(), 2);
    assert!(array[0]["identity_status"].is_string(), "{array:?}");

    // A file whose name says no format stops the hunt before it is sent.
    let hunts = c.keys_under("/sweep/hunts/").len();
    let out = c.sweep(&["hunt", sql, "--output", "rows.txt"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--output rows.txt: unknown file type `.txt`"),
        "{stderr}"
    );
    assert_eq!(c.keys_under("/sweep/hunts/").len(), hunts);
}
