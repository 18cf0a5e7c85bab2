//! The guard on the engine's own connection, alone: the authorizer, the
//! read-only check and the connection limits on the connection that runs the
//! query (its virtual tables, not the schema connection `guard::check` uses).
//! `Engine::run` always checks on the schema connection first; these run a
//! text as if that check had let it through.

use super::*;

fn unguarded(sql: &str) -> QueryOutput {
    let engine = Engine::new(Arc::new(Registry::default()), Limits::default());
    let started = Instant::now();
    let budget = Budget::until(started + engine.limits.wall_time);
    let cancel = Budget::unlimited();
    let shared = ScanShared::new(budget.clone(), engine.registry.env().clone());
    let (conn, watch) = engine.connect(&budget, &cancel, shared).expect("connect");
    let mut rows = Vec::new();
    let mut out = engine.execute(&conn, &watch, sql, &budget, &cancel, &mut |_, row| {
        rows.push(row);
        Ok(())
    });
    out.rows = rows;
    out
}

fn assert_stopped(sql: &str, fragment: &str) {
    let out = unguarded(sql);
    let message = match &out.error {
        Some(QueryError::Sql(m) | QueryError::Refused(m)) => m,
        other => panic!("{sql:?} was not stopped: {other:?}"),
    };
    assert!(
        message.contains(fragment),
        "{sql:?}: {message:?} lacks {fragment:?}"
    );
    assert!(out.rows.is_empty(), "{sql:?} returned rows");
}

#[test]
fn the_authorizer_denies_what_the_guard_refuses() {
    for sql in [
        "INSERT INTO processes (pid) VALUES (1)",
        "REPLACE INTO processes (pid) VALUES (1)",
        "INSERT INTO processes (pid) VALUES (1) ON CONFLICT DO NOTHING",
        "CREATE TABLE t (x)",
        "CREATE TEMP TABLE t (x)",
        "CREATE VIEW v AS SELECT 1",
        "CREATE TEMP VIEW v AS SELECT 1",
        "CREATE VIRTUAL TABLE v USING fts5(a)",
        "DROP TABLE processes",
        "ATTACH DATABASE '/tmp/sweep-authorizer-test.db' AS x",
        "ATTACH DATABASE ':memory:' AS x",
        "DETACH DATABASE main",
        "PRAGMA writable_schema = 1",
        "PRAGMA table_info(processes)",
        "PRAGMA database_list",
        "ANALYZE",
        "BEGIN",
        "COMMIT",
        "SAVEPOINT s",
        "RELEASE s",
        // VACUUM has no authorizer action but writes; the read-only check stops it.
        "VACUUM",
        "VACUUM INTO '/tmp/sweep-vacuum-test.db'",
    ] {
        assert_stopped(sql, "only SELECT is allowed");
    }
    for f in [
        "load_extension('/tmp/x.so')",
        "fts3_tokenizer('simple')",
        "zeroblob(10)",
    ] {
        assert_stopped(&format!("SELECT {f}"), "function not allowed");
    }
    for t in [
        "sqlite_master",
        "sqlite_schema",
        "sqlite_temp_master",
        "temp.sqlite_master",
        "pragma_table_info('processes')",
        "pragma_database_list",
    ] {
        assert_stopped(&format!("SELECT * FROM {t}"), "no such table");
    }
    // Our virtual tables have no xUpdate, no indexes and no rename: SQLite
    // stops these before it asks the authorizer.
    assert_stopped("UPDATE processes SET name = 'x'", "may not be modified");
    assert_stopped("DELETE FROM processes", "may not be modified");
    assert_stopped("CREATE INDEX i ON processes (pid)", "may not be indexed");
    assert_stopped("ALTER TABLE processes RENAME TO p", "may not be altered");
    assert_stopped("SELECT 1; SELECT 2", "exactly one statement");
    // The shell's file functions are not compiled in at all.
    assert_stopped("SELECT readfile('/etc/shadow')", "no such function");
    assert_stopped("SELECT * FROM sqlite_sequence", "no such table");
    for path in ["/tmp/sweep-authorizer-test.db", "/tmp/sweep-vacuum-test.db"] {
        assert!(!std::path::Path::new(path).exists(), "{path} was created");
    }
}

#[test]
fn authorizer_allows_plain_reads() {
    let me = std::process::id();
    let out = unguarded(&format!("SELECT pid FROM processes WHERE pid = {me}"));
    assert_eq!(out.error, None);
    assert_eq!(out.rows, vec![vec![Value::Integer(i64::from(me))]]);
    let out = unguarded(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) \
         SELECT sum(x) FROM c",
    );
    assert_eq!(out.error, None);
    assert_eq!(out.rows, vec![vec![Value::Integer(6)]]);
}
