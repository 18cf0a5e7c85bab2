//! The fleet simulator (`sweep-agent fleet`) beside real agents: virtual
//! agents run the daemon's own code with their own leases, watches, ledgers
//! and identities, so hunts reach and hear from all of them, and agents
//! killed at once leave the fleet within one lease TTL.

use std::time::Duration;

use sweep_e2e::{eventually, http_request, ndjson, ok, Backend, Cluster};

/// Live agents `sweep agents --json` lists.
fn live(c: &Cluster) -> usize {
    ndjson(&c.sweep(&["agents", "--json"]).stdout).len()
}

/// On ZooKeeper every virtual agent has its own session (the fleet's only
/// fair model of liveness there), so the store sees 203 sessions.
fn a_hunt_hears_every_virtual_and_real_agent_and_killed_ones_leave_within_the_ttl(
    backend: Backend,
) {
    let c = Cluster::start_on(backend).unwrap();
    let _real: Vec<_> = ["web-1", "web-2", "db-1"]
        .iter()
        .map(|h| c.agent(h, &[]).unwrap())
        .collect();
    let fleet = c.fleet(200).unwrap();
    let all = eventually(Duration::from_secs(60), || (live(&c) == 203).then_some(()));
    assert!(all.is_some(), "{} live\n{}", live(&c), fleet.log_text());

    let out = c.sweep(&["hunt", "SELECT 1 AS one", "--json", "--timeout", "60s"]);
    ok(&out);
    assert_eq!(ndjson(&out.stdout).len(), 203);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("from 203 of 203 agent(s)"), "{stderr}");

    // 50 die at once: their leases lapse (their sessions end) together
    // (TTL 3 s in the harness).
    let addr = fleet.admin_addr().expect("the fleet's admin address");
    let killed = http_request(&addr, "POST", "/kill?count=50");
    assert!(killed.starts_with("HTTP/1.1 200"), "{killed}");
    let left = eventually(Duration::from_secs(10), || (live(&c) == 153).then_some(()));
    assert!(left.is_some(), "{} live after the kill", live(&c));
    let out = c.sweep(&["hunt", "SELECT 2 AS two", "--json", "--timeout", "60s"]);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("from 153 of 153 agent(s)"), "{stderr}");
    assert_eq!(ndjson(&out.stdout).len(), 153);
}

#[test]
fn stalled_agents_answer_once_they_catch_up() {
    let c = Cluster::start().unwrap();
    let fleet = c.fleet(20).unwrap();
    let all = eventually(Duration::from_secs(60), || (live(&c) == 20).then_some(()));
    assert!(all.is_some(), "{} live\n{}", live(&c), fleet.log_text());
    let addr = fleet.admin_addr().unwrap();
    let stalled = http_request(&addr, "POST", "/stall?count=5&for=4s");
    assert!(stalled.starts_with("HTTP/1.1 200"), "{stalled}");
    // The stalled five answer after their stall, within the hunt's wait.
    let out = c.sweep(&["hunt", "SELECT 1 AS one", "--json", "--timeout", "30s"]);
    ok(&out);
    assert_eq!(ndjson(&out.stdout).len(), 20);
    let status = sweep_e2e::http_get(&addr, "/fleet");
    assert!(status.contains("\"running\":20"), "{status}");
}

sweep_e2e::on_each_backend!(
    a_hunt_hears_every_virtual_and_real_agent_and_killed_ones_leave_within_the_ttl
);
