//! The agent's admin endpoint: `/live`, `/ready` (false while etcd is away)
//! and `/metrics`, whose output passes `promtool check metrics` and carries
//! the process metrics and build info.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use sweep_e2e::{eventually, Cluster, Proc};

/// The admin address the agent logged.
fn admin_addr(agent: &Proc) -> String {
    eventually(Duration::from_secs(20), || {
        let log = agent.log_text();
        let line = log
            .lines()
            .find(|l| l.contains("admin endpoint listening"))?;
        let addr = line.split("addr=").nth(1)?.split_whitespace().next()?;
        Some(addr.to_string())
    })
    .unwrap_or_else(|| panic!("no admin address in the log\n{}", agent.log_text()))
}

/// A plain HTTP/1.1 GET: (status, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the admin endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn live_ready_and_metrics_that_promtool_accepts() {
    let mut c = Cluster::start().unwrap();
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();
    let addr = admin_addr(&agent);

    assert_eq!(get(&addr, "/live"), (200, "ok\n".to_string()));
    eventually(Duration::from_secs(20), || {
        (get(&addr, "/ready").0 == 200).then_some(())
    })
    .unwrap_or_else(|| panic!("never ready: {:?}", get(&addr, "/ready")));

    let (status, metrics) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_threads",
        "process_start_time_seconds",
        "sweep_agent_spool_records",
        "sweep_agent_kafka_records_quarantined_total",
    ] {
        assert!(metrics.contains(name), "no {name} in\n{metrics}");
    }
    let build = format!(
        "sweep_agent_build_info{{version=\"{}\"}} 1",
        sweep_proto::VERSION
    );
    assert!(metrics.contains(&build), "no {build}");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "promtool not found: install Debian's `prometheus` package (ops/install-deps does)",
        );
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Without etcd the watches are down: not ready, and it says why.
    c.stop_etcd();
    let (status, why) = eventually(Duration::from_secs(30), || {
        let r = get(&addr, "/ready");
        (r.0 == 503).then_some(r)
    })
    .unwrap_or_else(|| panic!("still ready without etcd\n{}", agent.log_text()));
    assert_eq!(status, 503);
    assert!(why.contains("watch is not established"), "{why}");
    assert_eq!(get(&addr, "/live").0, 200, "alive all the same");
    c.start_etcd().unwrap();
    eventually(Duration::from_secs(30), || {
        (get(&addr, "/ready").0 == 200).then_some(())
    })
    .unwrap_or_else(|| panic!("not ready again after etcd came back\n{}", agent.log_text()));
}
