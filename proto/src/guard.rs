//! The query guard: every SQL text is checked here before it runs, on the
//! controller (early, clear errors) and again on the agent (which trusts
//! nobody).
//!
//! SQLite's own parser is the authority on syntax: the text is prepared on a
//! connection that declares every table in [`crate::schema`] and registers
//! osquery's functions ([`crate::functions`]), under an authorizer that allows
//! only `SELECT` (and recursive CTEs), reads of known tables and calls of the
//! allowed functions. Whatever SQLite (and so osquery) accepts within those
//! rules passes; the rest is refused with the reason. The agent installs the
//! same authorizer on the connection that runs the query, so the rules hold at
//! run time too.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::{Connection, Statement};

use crate::ProtoError;

/// Longest SQL text accepted. osquery's longest pack query is under 2 KB; a
/// limit keeps a hostile text from costing the parser real time and memory.
pub const MAX_SQL_BYTES: usize = 64 * 1024;

/// How deep SQLite lets expressions nest (its default is 1000). The agent runs
/// queries on 2 MiB threads; SQLite walks expression trees recursively.
const MAX_EXPR_DEPTH: i32 = 200;

/// SQLite built-ins, and osquery's own functions ([`crate::functions`]), that
/// read nothing but their arguments. `load_extension`, `readfile`,
/// `fts3_tokenizer` and the like are absent on purpose.
const FUNCTIONS: &[&str] = &[
    "abs",
    "acos",
    "asin",
    "atan",
    "avg",
    "ceil",
    "char",
    "coalesce",
    "community_id_v1",
    "community_id_v1_strict",
    "concat",
    "concat_ws",
    "conditional_to_base64",
    "cos",
    "cot",
    "count",
    "cume_dist",
    "date",
    "datetime",
    "degrees",
    "dense_rank",
    "exp",
    "first_value",
    "floor",
    "format",
    "from_base64",
    "glob",
    "group_concat",
    "hex",
    "ifnull",
    "iif",
    "inet_aton",
    "instr",
    "json",
    "json_array",
    "json_array_length",
    "json_each",
    "json_extract",
    "json_group_array",
    "json_group_object",
    "json_insert",
    "json_object",
    "json_patch",
    "json_quote",
    "json_remove",
    "json_replace",
    "json_set",
    "json_tree",
    "json_type",
    "json_valid",
    "julianday",
    "lag",
    "last_value",
    "lead",
    "length",
    "like",
    "likelihood",
    "likely",
    "log",
    "log10",
    "lower",
    "ltrim",
    "max",
    "md5",
    "min",
    "nth_value",
    "ntile",
    "nullif",
    "octet_length",
    "percent_rank",
    "pi",
    "power",
    "printf",
    "quote",
    "radians",
    "rank",
    "regex_match",
    "regex_split",
    "regexp",
    "replace",
    "round",
    "row_number",
    "rtrim",
    "sha1",
    "sha256",
    "sin",
    "split",
    "sqrt",
    "strftime",
    "string_agg",
    "substr",
    "substring",
    "sum",
    "tan",
    "time",
    "timediff",
    "to_base64",
    "total",
    "trim",
    "typeof",
    "unhex",
    "unicode",
    "unixepoch",
    "unlikely",
    "upper",
];
/// Table-valued functions allowed in FROM.
const TABLE_FUNCTIONS: &[&str] = &["json_each", "json_tree"];

/// Whether `name` (lower case) is a function queries may call.
pub fn is_allowed_function(name: &str) -> bool {
    FUNCTIONS.binary_search(&name).is_ok()
}

/// What a checked query reads: useful for logs and for matching rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub tables: BTreeSet<String>,
}

/// Checks `sql` against the guard: prepares it on a connection that declares
/// every table in [`crate::schema`] (nothing runs).
pub fn check(sql: &str) -> Result<Checked, ProtoError> {
    precheck(sql)?;
    // One schema connection for the process: building it declares every
    // table, and a check takes microseconds, so sharing it costs nothing.
    static SCHEMA: Mutex<Option<(Connection, Watch)>> = Mutex::new(None);
    let mut slot = SCHEMA.lock().unwrap_or_else(PoisonError::into_inner);
    if slot.is_none() {
        *slot = Some(schema_connection().map_err(|e| ProtoError::Refused(e.to_string()))?);
    }
    let Some((conn, watch)) = slot.as_ref() else {
        unreachable!("set above")
    };
    let checked = match prepare(conn, watch, sql) {
        Ok((_, checked)) => Ok(checked),
        Err(ProtoError::Sql(why)) => Err(ProtoError::Refused(why)),
        Err(other) => Err(other),
    };
    checked
}

/// The refusals that need no parser: empty and oversized texts.
fn precheck(sql: &str) -> Result<(), ProtoError> {
    if sql.trim().is_empty() {
        return Err(ProtoError::Refused("the query is empty".into()));
    }
    if sql.len() > MAX_SQL_BYTES {
        return Err(ProtoError::Refused(format!(
            "the query is {} bytes; the limit is {MAX_SQL_BYTES}",
            sql.len()
        )));
    }
    Ok(())
}

/// A connection with every table declared (as plain, empty tables), osquery's
/// functions registered, the guard's limits and its authorizer.
fn schema_connection() -> rusqlite::Result<(Connection, Watch)> {
    let mut conn = Connection::open_in_memory()?;
    for table in crate::schema::TABLES {
        conn.execute_batch(&table.create_sql())?;
    }
    crate::functions::register(&conn)?;
    let watch = install(&mut conn, crate::schema::is_known)?;
    Ok((conn, watch))
}

/// Sets the limits every guarded connection has: no attached databases,
/// bounded text, expression depth and compound selects, and osquery's
/// tolerance of double-quoted strings (`name="bash"`).
pub fn limit(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, 16 * 1024 * 1024)?;
    conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_BYTES as i32)?;
    conn.set_limit(Limit::SQLITE_LIMIT_EXPR_DEPTH, MAX_EXPR_DEPTH)?;
    conn.set_limit(Limit::SQLITE_LIMIT_COMPOUND_SELECT, 50)?;
    // SQLite reads "bash" as a string when no column has that name; osquery's
    // queries rely on it. Only for queries, never for schema definitions.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DDL, false)?;
    Ok(())
}

/// What the authorizer saw while a statement was prepared: the tables it
/// reads, and why it was refused.
#[derive(Debug, Clone, Default)]
pub struct Watch(Arc<Mutex<Seen>>);

#[derive(Debug, Default)]
struct Seen {
    tables: BTreeSet<String>,
    refusal: Option<String>,
}

impl Watch {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Applies [`limit`] and installs the guard's authorizer on `conn`, with
/// `known` naming the tables that may be read. The authorizer is consulted
/// at every prepare, including SQLite's own re-prepares at run time.
pub fn install(
    conn: &mut Connection,
    known: impl Fn(&str) -> bool + Send + 'static,
) -> rusqlite::Result<Watch> {
    limit(conn)?;
    let watch = Watch::default();
    let seen = watch.clone();
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        match decide(&ctx, &known) {
            Ok(Some(table)) => {
                seen.seen().tables.insert(table);
                Authorization::Allow
            }
            Ok(None) => Authorization::Allow,
            Err(why) => {
                seen.seen().refusal.get_or_insert(why);
                Authorization::Deny
            }
        }
    }))?;
    Ok(watch)
}

/// Prepares `sql` on a connection set up by [`install`]: the statement, ready
/// to run, and what it reads; or why not: [`ProtoError::Refused`] for what the
/// guard's rules forbid, [`ProtoError::Sql`] with SQLite's message for a text
/// SQLite cannot prepare.
pub fn prepare<'c>(
    conn: &'c Connection,
    watch: &Watch,
    sql: &str,
) -> Result<(Statement<'c>, Checked), ProtoError> {
    precheck(sql)?;
    *watch.seen() = Seen::default();
    let refuse = |why: String| Err(ProtoError::Refused(why));
    let stmt = match conn.prepare(sql) {
        Ok(stmt) => stmt,
        Err(e) => {
            if let Some(why) = watch.seen().refusal.take() {
                return refuse(why);
            }
            return Err(match e {
                rusqlite::Error::MultipleStatement => {
                    ProtoError::Refused("exactly one statement is allowed".into())
                }
                rusqlite::Error::SqliteFailure(_, Some(msg)) => ProtoError::Sql(msg),
                rusqlite::Error::SqlInputError { msg, .. } => ProtoError::Sql(msg),
                rusqlite::Error::ModuleError(msg) => ProtoError::Sql(msg),
                other => ProtoError::Sql(other.to_string()),
            });
        }
    };
    if stmt.is_explain() != 0 {
        return refuse("only SELECT is allowed, not EXPLAIN".into());
    }
    if !stmt.readonly() {
        return refuse("only SELECT is allowed; the statement writes".into());
    }
    if stmt.column_count() == 0 {
        // SQLite prepares nothing from comments alone.
        return refuse(match stmt.expanded_sql() {
            None => "the query has no statement".into(),
            Some(_) => "only SELECT is allowed".into(),
        });
    }
    let tables = std::mem::take(&mut watch.seen().tables);
    Ok((stmt, Checked { tables }))
}

/// The authorizer's rule for one action: allowed (with the table it reads, if
/// any) or refused with the reason.
fn decide(ctx: &AuthContext<'_>, known: &dyn Fn(&str) -> bool) -> Result<Option<String>, String> {
    let not = |what: &str| Err(format!("only SELECT is allowed, not {what}"));
    match &ctx.action {
        AuthAction::Select | AuthAction::Recursive => Ok(None),
        AuthAction::Read { table_name, .. } => {
            let name = table_name.to_ascii_lowercase();
            if known(&name) {
                Ok(Some(name))
            } else if TABLE_FUNCTIONS.contains(&name.as_str()) {
                Ok(None)
            } else if ctx.database_name.is_none() && !name.starts_with("sqlite_") {
                // A read with no database is `count(*)` of a table already
                // resolved; on our connections the only other tables are
                // SQLite's own, so this is a CTE.
                Ok(None)
            } else {
                Err(format!("no such table: {name}"))
            }
        }
        AuthAction::Function { function_name } => {
            let name = function_name.to_ascii_lowercase();
            if is_allowed_function(&name) {
                Ok(None)
            } else {
                Err(format!("function not allowed: {name}"))
            }
        }
        // A schema change writes SQLite's own tables before it names itself
        // (CREATE TABLE inserts into sqlite_master first): say what it is.
        AuthAction::Insert { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::Delete { table_name }
            if table_name.to_ascii_lowercase().starts_with("sqlite_") =>
        {
            not("a schema change (CREATE, DROP, ANALYZE)")
        }
        AuthAction::Insert { .. } => not("INSERT"),
        AuthAction::Update { .. } => not("UPDATE"),
        AuthAction::Delete { .. } => not("DELETE"),
        AuthAction::Pragma { .. } => not("PRAGMA"),
        AuthAction::Attach { .. } => not("ATTACH"),
        AuthAction::Detach { .. } => not("DETACH"),
        AuthAction::Transaction { .. } => not("a transaction (BEGIN, COMMIT, ROLLBACK)"),
        AuthAction::Savepoint { .. } => not("SAVEPOINT"),
        AuthAction::Analyze { .. } => not("ANALYZE"),
        AuthAction::Reindex { .. } => not("REINDEX"),
        AuthAction::AlterTable { .. } => not("ALTER TABLE"),
        AuthAction::CreateTable { .. } => not("CREATE TABLE"),
        AuthAction::CreateTempTable { .. } => not("CREATE TEMP TABLE"),
        AuthAction::CreateView { .. } | AuthAction::CreateTempView { .. } => not("CREATE VIEW"),
        AuthAction::CreateIndex { .. } | AuthAction::CreateTempIndex { .. } => not("CREATE INDEX"),
        AuthAction::CreateTrigger { .. } | AuthAction::CreateTempTrigger { .. } => {
            not("CREATE TRIGGER")
        }
        AuthAction::CreateVtable { .. } => not("CREATE VIRTUAL TABLE"),
        AuthAction::DropTable { .. } | AuthAction::DropTempTable { .. } => not("DROP TABLE"),
        AuthAction::DropView { .. } | AuthAction::DropTempView { .. } => not("DROP VIEW"),
        AuthAction::DropIndex { .. } | AuthAction::DropTempIndex { .. } => not("DROP INDEX"),
        AuthAction::DropTrigger { .. } | AuthAction::DropTempTrigger { .. } => not("DROP TRIGGER"),
        AuthAction::DropVtable { .. } => not("DROP VIRTUAL TABLE"),
        _ => Err("only SELECT is allowed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(sql: &str) -> String {
        match check(sql) {
            Err(ProtoError::Refused(why)) => why,
            other => panic!("{sql:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn the_function_list_is_sorted_for_binary_search() {
        assert!(FUNCTIONS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn every_allowed_function_exists_on_the_schema_connection() {
        // SQLite itself says whether a name resolves: a wrong argument count
        // means it exists, "no such function" that the list promises one that
        // neither SQLite nor crate::functions provides.
        let (conn, _) = schema_connection().unwrap();
        for name in FUNCTIONS.iter().filter(|f| !TABLE_FUNCTIONS.contains(f)) {
            for args in ["", "1", "1, 2", "1, 2, 3", "'a'"] {
                if let Err(e) = conn.prepare(&format!("SELECT {name}({args})")) {
                    assert!(!e.to_string().contains("no such function"), "{name}: {e}");
                }
            }
        }
    }

    #[test]
    fn plain_selects_pass() {
        for sql in [
            "SELECT pid, name FROM processes WHERE pid = 1",
            "select * from users join groups using (gid);",
            "WITH p AS (SELECT pid FROM processes) SELECT count(*) FROM p",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) SELECT x FROM c",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
            "SELECT count(*) FROM processes",
            "WITH a AS (SELECT 1 AS x), b AS (SELECT x FROM a) SELECT * FROM b, (SELECT x FROM a)",
            "SELECT upper(name) FROM processes WHERE name LIKE 'ba%'",
            "SELECT * FROM kernel_info JOIN hash USING (path)",
            "SELECT value FROM json_each('[1,2]')",
            "SELECT u.username, a.key_file FROM users u CROSS JOIN authorized_keys a USING (uid)",
            "select * from process_open_sockets where pid in ( ( select pid from processes \
             where name=\"bash\" ) and ( select pid from processes where parent not in \
             ( select pid from processes where name=\"sshd\" ) ) ) and protocol=17 ;",
        ] {
            check(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let read = check("SELECT * FROM users u JOIN processes p USING (uid) WHERE p.name = 'x'")
            .unwrap()
            .tables;
        assert_eq!(read.into_iter().collect::<Vec<_>>(), ["processes", "users"]);
    }

    #[test]
    fn hostile_texts_are_refused() {
        assert!(refused("DELETE FROM processes").contains("only SELECT"));
        assert!(refused("ATTACH DATABASE '/tmp/x.db' AS x").contains("ATTACH"));
        assert!(refused("SELECT 1; SELECT 2").contains("exactly one statement"));
        assert!(refused("PRAGMA writable_schema=1").contains("PRAGMA"));
        assert!(refused("SELECT load_extension('/tmp/x.so')").contains("load_extension"));
        assert!(refused("SELECT * FROM sqlite_master").contains("no such table"));
        assert!(refused("SELECT count(*) FROM sqlite_master").contains("no such table"));
        assert!(refused("SELECT * FROM main.sqlite_master").contains("no such table"));
        // `main` is the schema our tables are in; no other can be reached.
        assert!(check("SELECT * FROM main.processes").is_ok());
        assert!(refused("SELECT * FROM temp.processes").contains("no such table"));
        assert!(refused(
            "SELECT * FROM (WITH sqlite_master AS (SELECT 1) SELECT * FROM sqlite_master), \
             sqlite_master"
        )
        .contains("no such table: sqlite_master"));
        assert!(refused("CREATE TEMP TABLE t(x)").contains("CREATE"));
        assert!(refused("").contains("empty"));
        assert!(refused(&"x".repeat(MAX_SQL_BYTES + 1)).contains("limit"));
        // SQLite's reading of nesting: 500 parentheses are one value, 5000 too deep.
        assert!(check(&format!("SELECT {}1{}", "(".repeat(500), ")".repeat(500))).is_ok());
        assert!(
            refused(&format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000)))
                .contains("Recursion limit")
        );
    }

    #[test]
    fn the_longest_operator_chain_fits_a_small_thread() {
        // Found while fuzzing: `1=1=…` as long as the limit allows overflowed the
        // 2 MiB stack of the agent's query threads (with the old parser).
        let sql = format!("SELECT 1{}", "=1".repeat((MAX_SQL_BYTES - 8) / 2));
        let run = move || check(&sql).map(|c| c.tables.len());
        let thread = std::thread::Builder::new().stack_size(256 * 1024);
        let result = thread.spawn(run).unwrap().join().unwrap();
        assert!(
            matches!(result, Err(ProtoError::Refused(ref why)) if why.contains("too large")),
            "{result:?}"
        );
    }
}
