//! The memory limit: a query that pushes the agent's resident memory past
//! `max_memory_bytes` is stopped with an error naming the limit, and the
//! engine answers the next query.

use std::sync::Arc;
use std::time::Duration;

use sweep_agent::tables::{resident_bytes, Registry};
use sweep_agent::{Engine, Limits, QueryError};

#[test]
fn a_query_past_the_memory_limit_is_stopped() {
    let registry = Arc::new(Registry::default());
    let baseline = resident_bytes().expect("/proc/self/statm");
    let limits = Limits {
        wall_time: Duration::from_secs(60),
        max_rows: 10_000_000,
        max_bytes: u64::MAX,
        // Room for the engine, not for every file under /usr held in memory.
        max_memory_bytes: baseline + 24 * 1024 * 1024,
        ..Limits::default()
    };
    let engine = Engine::new(registry, limits);
    let out = engine.run("SELECT count(*) FROM file WHERE path LIKE '/usr/%%'");
    match &out.error {
        Some(QueryError::Limit(why)) => assert!(why.contains("memory limit"), "{why}"),
        other => panic!(
            "expected the memory limit, got {other:?} after {:?}",
            out.elapsed
        ),
    }
    // Still answering.
    let me = std::process::id() as i64;
    let out = engine.run(&format!("SELECT pid FROM processes WHERE pid = {me}"));
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.rows.len(), 1);
}
