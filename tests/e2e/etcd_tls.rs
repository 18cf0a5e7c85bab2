//! etcd over TLS: agents and the controller verify etcd's certificate against
//! the configured CA, and the loop works as over plain HTTP.

use std::time::Duration;

use sweep_e2e::{ndjson, Cluster};

#[test]
fn the_loop_works_with_etcd_over_tls() {
    let c = Cluster::start_tls().unwrap();
    assert!(c.etcd_url.starts_with("https://"));
    let agent = c.agent("web-1", &[]).unwrap();
    c.wait_agents(&["web-1"], Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_text()));
    let out = c.sweep(&["hunt", "SELECT 'tls' AS over", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = ndjson(&out.stdout);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["over"], "tls");

    // Without the CA the controller cannot talk to this etcd, and says so.
    let out = c
        .sweep_cmd(&["agents"])
        .env_remove("SWEEP_CONFIG")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Error"));
}
