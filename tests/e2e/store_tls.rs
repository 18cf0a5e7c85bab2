//! The coordination store over TLS (etcd, and ZooKeeper's Netty
//! `secureClientPort`): agents and the controller verify the store's
//! certificate against the configured CA, and the loop works as without TLS.

use std::time::Duration;

use sweep_e2e::{ndjson, Backend, Cluster};

fn the_loop_works_with_the_store_over_tls(backend: Backend) {
    let c = Cluster::start_tls_on(backend).unwrap();
    if backend == Backend::Etcd {
        assert!(c.etcd_url.starts_with("https://"));
    }
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

    // Without the CA the controller cannot talk to this store, and says so.
    let out = c
        .sweep_cmd(&["agents"])
        .env_remove("SWEEP_CONFIG")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Error"));
}

sweep_e2e::on_each_backend!(the_loop_works_with_the_store_over_tls);
