//! Memory per query: a query that grows the agent past `max_memory_bytes`
//! (rows its tables generate, or SQLite's own heap for a sort) is stopped
//! with an error naming the limit; what one query used never makes a later
//! one fail; and after a large answer the agent's resident size returns to
//! where it was.
//!
//! One test, its steps in sequence: resident size is per process, and other
//! tests running beside it would move it.

use std::sync::Arc;
use std::time::Duration;

use sweep_agent::tables::{resident_bytes, Budget, Registry};
use sweep_agent::{Engine, Limits, QueryError, QueryOutput};

const MIB: u64 = 1024 * 1024;

fn expect_memory_limit(out: &QueryOutput, what: &str) {
    match &out.error {
        Some(QueryError::Limit(why)) => assert!(why.contains("memory limit"), "{what}: {why}"),
        other => panic!(
            "{what}: expected the memory limit, got {other:?} after {:?}",
            out.elapsed
        ),
    }
}

fn own_pid_answers(engine: &Engine) {
    let me = std::process::id() as i64;
    let out = engine.run(&format!("SELECT pid FROM processes WHERE pid = {me}"));
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(out.rows.len(), 1);
}

#[test]
fn memory_is_limited_per_query_and_given_back() {
    let registry = Arc::new(Registry::default());
    let limits = Limits {
        wall_time: Duration::from_secs(120),
        max_rows: 10_000_000,
        max_bytes: u64::MAX,
        ..Limits::default()
    };
    assert_eq!(limits.max_memory_bytes, 200 * MIB, "osquery's default");
    let engine = Engine::new(registry.clone(), limits.clone());
    own_pid_answers(&engine);
    let idle = resident_bytes().expect("/proc/self/statm");

    // 1. A large answer, handed on row by row as the daemon does with a
    //    hunt: it completes, and the memory goes back.
    let mut rows = 0u64;
    let out = engine.run_each(
        "SELECT path, size, mtime, mode, uid FROM file WHERE path LIKE '/usr/%%'",
        Budget::unlimited(),
        &mut |_, _| {
            rows += 1;
            Ok(())
        },
    );
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(rows > 10_000, "only {rows} files under /usr");
    let after = resident_bytes().unwrap();
    eprintln!(
        "{rows} rows; resident {} MiB idle, {} MiB after",
        idle / MIB,
        after / MIB
    );
    assert!(
        after <= idle + 20 * MIB,
        "resident size {} MiB after the query, {} MiB before",
        after / MIB,
        idle / MIB
    );
    own_pid_answers(&engine);

    // 2. SQLite's own heap: a sort of 150 strings of 16 MB each. The heap
    //    limit stops it, with the limit named.
    let sort = "WITH RECURSIVE big(s) AS (SELECT printf('%.*c',15999000,'a')), \
                c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<150) \
                SELECT count(*) AS n FROM (SELECT x FROM c, big ORDER BY s||x)";
    let out = engine.run(sort);
    expect_memory_limit(&out, "the sort");
    let after = resident_bytes().unwrap();
    assert!(
        after <= idle + 20 * MIB,
        "the stopped sort left memory behind: {} MiB, {} MiB idle, SQLite {} ({:?} after {:?})",
        after / MIB,
        idle / MIB,
        sweep_agent::engine::heap::sqlite_memory_used(),
        out.error,
        out.elapsed
    );
    own_pid_answers(&engine);

    // 3. Rows a table generates count too: with a 24 MiB allowance the
    //    same /usr scan is stopped, and the next query still runs.
    let tight = Engine::new(
        registry,
        Limits {
            max_memory_bytes: 24 * MIB,
            ..limits
        },
    );
    let out = tight.run("SELECT count(*) FROM file WHERE path LIKE '/usr/%%'");
    expect_memory_limit(&out, "the /usr scan under 24 MiB");
    own_pid_answers(&tight);
}
