//! Hostile and broken query texts: each is refused by the guard or stopped by
//! SQLite or a limit, with a message that says why; and the engine that saw
//! them all still answers a normal query.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use sweep_agent::tables::Registry;
use sweep_agent::{Engine, Limits, QueryError, QueryOutput};

const WALL: Duration = Duration::from_secs(2);
const MAX_ROWS: u64 = 1_000;
const MAX_BYTES: u64 = 8 * 1024 * 1024;
/// How long past the wall time a stopped query may take to end: a debug build
/// on two shared cores is slow, but a query that ignored the limit is far slower.
const GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Refused,
    Sql,
    Limit,
}

fn engine() -> Engine {
    Engine::new(
        Arc::new(Registry::default()),
        Limits {
            wall_time: WALL,
            max_rows: MAX_ROWS,
            max_bytes: MAX_BYTES,
            ..Limits::default()
        },
    )
}

/// Runs `sql`, asserts it ended with an error of `kind` whose message contains
/// `fragment`, and returns the output for further checks.
fn expect(engine: &Engine, sql: &str, kind: Kind, fragment: &str) -> QueryOutput {
    let out = engine.run(sql);
    let shown: String = sql.chars().take(100).collect();
    let (got, message) = match &out.error {
        Some(QueryError::Refused(m)) => (Kind::Refused, m),
        Some(QueryError::Sql(m)) => (Kind::Sql, m),
        Some(QueryError::Limit(m)) => (Kind::Limit, m),
        Some(QueryError::Output(m)) => panic!("{shown:?}: rows lost: {m}"),
        None => panic!("{shown:?} ran: {} rows", out.rows.len()),
    };
    assert_eq!(got, kind, "{shown:?}: {message}");
    assert!(
        message.contains(fragment),
        "{shown:?}: {message:?} lacks {fragment:?}"
    );
    // A refused or failed query returns nothing; only limits keep rows.
    if kind != Kind::Limit {
        assert!(out.rows.is_empty(), "{shown:?} returned rows");
    }
    out
}

/// Texts the guard refuses (SQLite's prepare under the guard's authorizer
/// and limits), with the message part that names the reason.
fn refused_corpus() -> Vec<(String, &'static str)> {
    let fixed: &[(&str, &str)] = &[
        // Writes.
        ("INSERT INTO processes (pid) VALUES (1)", "only SELECT is allowed, not INSERT"),
        ("UPDATE processes SET name = 'x'", "only SELECT is allowed, not UPDATE"),
        ("DELETE FROM processes", "only SELECT is allowed, not DELETE"),
        ("REPLACE INTO processes (pid) VALUES (1)", "only SELECT is allowed"),
        ("INSERT OR REPLACE INTO processes (pid) VALUES (1)", "only SELECT is allowed"),
        (
            "INSERT INTO processes (pid) VALUES (1) ON CONFLICT (pid) DO UPDATE SET name = 'x'",
            "only SELECT is allowed",
        ),
        (
            "WITH x AS (SELECT 1) INSERT INTO processes (pid) SELECT * FROM x",
            "only SELECT is allowed, not INSERT",
        ),
        // DDL.
        ("CREATE TABLE t (x)", "not a schema change"),
        ("CREATE TEMP TABLE t (x)", "not a schema change"),
        ("CREATE VIEW v AS SELECT * FROM processes", "not a schema change"),
        (
            "CREATE TRIGGER tr AFTER INSERT ON processes BEGIN SELECT 1; END",
            "only SELECT is allowed",
        ),
        ("CREATE INDEX i ON processes (pid)", "only SELECT is allowed"),
        ("CREATE VIRTUAL TABLE v USING fts5(a)", "not a schema change"),
        ("DROP TABLE processes", "only SELECT is allowed"),
        ("DROP VIEW v", "no such view"),
        ("ALTER TABLE processes RENAME TO p", "not ALTER TABLE"),
        // Other databases.
        ("ATTACH DATABASE '/tmp/x.db' AS x", "not ATTACH"),
        ("DETACH DATABASE x", "not DETACH"),
        // Pragmas.
        ("PRAGMA writable_schema = 1", "not PRAGMA"),
        ("PRAGMA database_list", "not PRAGMA"),
        ("PRAGMA query_only = 0", "not PRAGMA"),
        ("PRAGMA table_info('processes')", "not PRAGMA"),
        ("SELECT * FROM pragma_table_info('processes')", "no such table: pragma_table_info"),
        // Maintenance and transactions.
        ("VACUUM", "the statement writes"),
        ("VACUUM INTO '/tmp/x.db'", "the statement writes"),
        ("REINDEX", "only SELECT is allowed"),
        ("ANALYZE", "not a schema change"),
        ("BEGIN", "not a transaction"),
        ("COMMIT", "not a transaction"),
        ("ROLLBACK", "not a transaction"),
        ("SAVEPOINT s", "not SAVEPOINT"),
        ("RELEASE s", "not SAVEPOINT"),
        ("EXPLAIN SELECT 1", "not EXPLAIN"),
        ("TABLE processes", "syntax error"),
        // Functions that reach outside the query.
        ("SELECT load_extension('/tmp/x.so')", "function not allowed: load_extension"),
        ("SELECT readfile('/etc/shadow')", "no such function: readfile"),
        ("SELECT writefile('/tmp/x', 'y')", "no such function: writefile"),
        ("SELECT fts3_tokenizer('simple')", "function not allowed: fts3_tokenizer"),
        ("SELECT edit('x')", "no such function: edit"),
        ("SELECT zeroblob(1000000000)", "function not allowed: zeroblob"),
        ("SELECT randomblob(1000000000)", "function not allowed: randomblob"),
        // …also where they hide: subqueries, LIMIT, window definitions, table function arguments.
        (
            "SELECT * FROM processes WHERE pid = (SELECT writefile('/tmp/a', 'b'))",
            "no such function: writefile",
        ),
        ("SELECT * FROM processes LIMIT load_extension('x')", "function not allowed"),
        (
            "SELECT row_number() OVER w FROM processes WINDOW w AS (ORDER BY load_extension('x'))",
            "function not allowed: load_extension",
        ),
        ("SELECT * FROM json_each(readfile('/etc/shadow'))", "no such function: readfile"),
        // SQLite's own tables, however spelled.
        ("SELECT * FROM sqlite_master", "no such table: sqlite_master"),
        ("SELECT * FROM sqlite_schema", "no such table: sqlite_master"),
        ("SELECT * FROM sqlite_temp_master", "no such table: sqlite_temp_master"),
        ("SELECT * FROM sqlite_sequence", "no such table: sqlite_sequence"),
        ("SELECT * FROM [sqlite_master]", "no such table: sqlite_master"),
        ("SELECT * FROM \"SQLITE_MASTER\"", "no such table: sqlite_master"),
        (
            "SELECT 1 FROM processes ORDER BY (SELECT count(*) FROM sqlite_master)",
            "no such table: sqlite_master",
        ),
        // A CTE named like a schema table hides it only in its own query.
        (
            "SELECT * FROM (WITH sqlite_master AS (SELECT 1) SELECT * FROM sqlite_master), sqlite_master",
            "no such table: sqlite_master",
        ),
        // Schema-qualified names.
        ("SELECT * FROM temp.x", "no such table: temp.x"),
        ("SELECT * FROM main.sqlite_master", "no such table: sqlite_master"),
        // Broken texts.
        ("SELECT 1; SELECT 2", "exactly one statement is allowed"),
        ("", "the query is empty"),
        ("  \n\t ", "the query is empty"),
        ("-- only a comment\n/* and another */", "the query has no statement"),
        ("SELECT * FROM no_such_table", "no such table: no_such_table"),
        ("SELECT no_such_function(1)", "no such function: no_such_function"),
        ("SELEC pid FROM processes", "syntax error"),
    ];
    let mut corpus: Vec<(String, &str)> = fixed.iter().map(|(s, f)| (s.to_string(), *f)).collect();
    // 1 MB of text: refused by size before parsing.
    let huge = format!("SELECT 1 {}", "-- padding\n".repeat(100_000));
    assert!(huge.len() > 1_000_000);
    corpus.push((huge, "the limit is 65536"));
    // Parentheses nested far deeper than the parser may recurse.
    corpus.push((
        format!("SELECT {}1{}", "(".repeat(5_000), ")".repeat(5_000)),
        "Recursion limit",
    ));
    // Flat but deep: 2000 additions make an expression tree SQLite refuses.
    corpus.push((
        format!("SELECT {}", vec!["1"; 2_000].join(" + ")),
        "Expression tree is too large",
    ));
    corpus.push((
        vec!["SELECT 1"; 60].join(" UNION "),
        "too many terms in compound SELECT",
    ));
    corpus.push((
        format!(
            "SELECT 1 FROM {}",
            (0..70)
                .map(|i| format!("uptime u{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "at most 64 tables in a join",
    ));
    corpus
}

/// Texts the guard lets through that SQLite stops while running them.
fn sql_corpus() -> Vec<(String, &'static str)> {
    vec![
        // A huge value: over SQLite's length limit before any row is returned.
        (
            "SELECT printf('%.*c', 100000000, 'x')".to_string(),
            "string or blob too big",
        ),
    ]
}

#[test]
fn hostile_corpus_is_stopped_and_the_engine_still_answers() {
    let engine = engine();
    let refused = refused_corpus();
    let failed = sql_corpus();
    let mut count = 0;
    for (sql, fragment) in &refused {
        expect(&engine, sql, Kind::Refused, fragment);
        count += 1;
    }
    for (sql, fragment) in &failed {
        expect(&engine, sql, Kind::Sql, fragment);
        count += 1;
    }

    // `file` without its required column: the error names both choices.
    let out = expect(
        &engine,
        "SELECT * FROM file",
        Kind::Sql,
        "requires a WHERE constraint",
    );
    let Some(QueryError::Sql(message)) = &out.error else {
        unreachable!()
    };
    assert!(
        message.contains("path") && message.contains("directory"),
        "{message}"
    );
    count += 1;

    count += limits_on(&engine);
    println!("{count} hostile inputs stopped");
    assert!(count >= 40);

    // The same engine still answers, correctly: our own process, by pid.
    let me = std::process::id();
    let out = engine.run(&format!("SELECT pid, name FROM processes WHERE pid = {me}"));
    assert_eq!(out.error, None);
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert_eq!(
        out.rows,
        vec![vec![
            Value::Integer(i64::from(me)),
            Value::Text(comm.trim_end().to_string())
        ]]
    );
}

/// The inputs only a limit stops; returns how many were run.
fn limits_on(engine: &Engine) -> usize {
    // A recursive CTE that never ends, aggregated so no row comes out: only the
    // wall time stops it, and promptly.
    let started = Instant::now();
    expect(
        engine,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        Kind::Limit,
        "wall time limit of 2s reached",
    );
    assert!(started.elapsed() < WALL + GRACE, "{:?}", started.elapsed());

    // The same CTE returning its rows: the row limit stops it, keeping the rows.
    let out = expect(
        engine,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
        Kind::Limit,
        "row limit of 1000 reached",
    );
    let want: Vec<Vec<Value>> = (1..=MAX_ROWS as i64)
        .map(|x| vec![Value::Integer(x)])
        .collect();
    assert_eq!(out.rows, want);

    // A finite result larger than max_rows: the first max_rows rows are kept.
    let out = expect(
        engine,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1500) \
         SELECT x * 2 AS y FROM c",
        Kind::Limit,
        "row limit of 1000 reached",
    );
    assert_eq!(out.columns, ["y"]);
    let want: Vec<Vec<Value>> = (1..=MAX_ROWS as i64)
        .map(|x| vec![Value::Integer(2 * x)])
        .collect();
    assert_eq!(out.rows, want);

    // processes joined with itself six times: far too many combinations to
    // finish, so the wall time ends it.
    let started = Instant::now();
    expect(
        engine,
        "SELECT count(*) FROM processes a, processes b, processes c, processes d, \
         processes e, processes f",
        Kind::Limit,
        "wall time limit of 2s reached",
    );
    assert!(started.elapsed() < WALL + GRACE, "{:?}", started.elapsed());

    // 300 values of 1 MB each, under SQLite's length limit one by one, each
    // cut to 64 KiB (limits.max_value_bytes), and still over the result size
    // limit together.
    let out = expect(
        engine,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300) \
         SELECT printf('%.*c', 1000000, 'x') FROM c",
        Kind::Limit,
        "result size limit of 8388608 bytes reached",
    );
    let kept: usize = out
        .rows
        .iter()
        .map(|r| match &r[0] {
            Value::Text(t) => t.len(),
            other => panic!("{other:?}"),
        })
        .sum();
    assert!(!out.rows.is_empty() && out.rows.len() < 300);
    assert!(kept as u64 <= MAX_BYTES);
    5
}

/// VALUES alone reads nothing and calls nothing, so it is allowed: it is
/// plain SELECT syntax in SQLite.
#[test]
fn values_alone_is_allowed() {
    let out = engine().run("VALUES (1, 'a'), (2, 'b')");
    assert_eq!(out.error, None);
    assert_eq!(
        out.rows,
        vec![
            vec![Value::Integer(1), Value::Text("a".into())],
            vec![Value::Integer(2), Value::Text("b".into())],
        ]
    );
}

/// Window functions are ordinary analytics and must pass.
#[test]
fn window_function_passes() {
    let out = engine()
        .run("SELECT pid, row_number() OVER (ORDER BY pid) AS n FROM processes ORDER BY pid");
    assert_eq!(out.error, None);
    assert_eq!(out.columns, ["pid", "n"]);
    assert!(!out.rows.is_empty());
    let mut last = i64::MIN;
    for (i, row) in out.rows.iter().enumerate() {
        let (Value::Integer(pid), Value::Integer(n)) = (&row[0], &row[1]) else {
            panic!("{row:?}");
        };
        assert!(*pid > last, "pids not ascending");
        assert_eq!(*n, i as i64 + 1);
        last = *pid;
    }
    // Our own process is among them.
    let me = i64::from(std::process::id());
    assert!(out.rows.iter().any(|r| r[0] == Value::Integer(me)));
}
