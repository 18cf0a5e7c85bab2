//! An etcd outage: agents re-register when etcd is back, and hunts issued
//! after it still reach them (the watch is rebuilt, not lost).

use std::time::Duration;

use sweep_e2e::{ndjson, Cluster};

#[test]
fn agents_come_back_after_etcd_restarts() {
    let mut c = Cluster::start().unwrap();
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20)).unwrap();

    c.stop_etcd();
    // Longer than the lease TTL (3 s): the lease is gone when etcd returns.
    std::thread::sleep(Duration::from_secs(5));
    c.start_etcd().unwrap();

    c.wait_agents(&["web-1"], Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_text()));
    let out = c.sweep(&["hunt", "SELECT 42 AS answer", "--json", "--timeout", "20s"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        agent.log_text()
    );
    let rows = ndjson(&out.stdout);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["answer"], "42");
    assert_eq!(rows[0]["host_id"], "web-1");
}
