//! The query guard: every SQL text is checked here before it runs, on the
//! controller (early, clear errors) and again on the agent (which trusts
//! nobody). SQLite's authorizer on the agent enforces the same at run time;
//! this is the layer that gives the readable message.
//!
//! Allowed: exactly one `SELECT` or `WITH … SELECT` statement over known tables
//! (and CTEs it defines) calling only SQLite's pure built-in functions.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArguments, ObjectName, Query, SetExpr, Statement, TableFactor, Visit, Visitor,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

use crate::ProtoError;

/// Longest SQL text accepted. osquery's longest pack query is under 2 KB; a
/// limit keeps a hostile text from costing the parser real time and memory.
pub const MAX_SQL_BYTES: usize = 64 * 1024;

/// How deep expressions may nest before the parser gives up.
const MAX_NESTING: usize = 64;

/// SQLite built-ins, and osquery's own functions (the agent registers them:
/// agent/src/engine/functions.rs), that read nothing but their arguments.
/// `load_extension`, `readfile`, `fts3_tokenizer` and the like are absent on
/// purpose.
const FUNCTIONS: &[&str] = &[
    "abs",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "avg",
    "ceil",
    "ceiling",
    "char",
    "coalesce",
    "concat",
    "conditional_to_base64",
    "concat_ws",
    "cos",
    "cosh",
    "count",
    "cume_dist",
    "date",
    "datetime",
    "degrees",
    "dense_rank",
    "exp",
    "first_value",
    "floor",
    "from_base64",
    "format",
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
    "ln",
    "log",
    "log10",
    "log2",
    "lower",
    "ltrim",
    "max",
    "md5",
    "min",
    "mod",
    "nth_value",
    "ntile",
    "nullif",
    "octet_length",
    "percent_rank",
    "pi",
    "pow",
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
    "sign",
    "sin",
    "sinh",
    "split",
    "sqrt",
    "strftime",
    "string_agg",
    "substr",
    "substring",
    "sum",
    "tan",
    "tanh",
    "time",
    "timediff",
    "to_base64",
    "total",
    "trim",
    "trunc",
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
    FUNCTIONS.contains(&name)
}

/// What a checked query reads: useful for logs and for matching rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub tables: BTreeSet<String>,
}

/// The stack the guard runs on. A text within [`MAX_SQL_BYTES`] can chain
/// binary operators 32 768 deep (`1=1=1…`): sqlparser parses such a chain
/// without recursing, but walks and drops its AST recursively, which takes 2
/// to 4 MiB of stack: more than the 2 MiB of tokio's blocking threads, where
/// the agent runs queries, and an overflow aborts the whole process.
const STACK: usize = 16 * 1024 * 1024;

/// Checks `sql` against the guard. `known` says which table names exist.
pub fn check(sql: &str, known: &dyn Fn(&str) -> bool) -> Result<Checked, ProtoError> {
    // A fresh stack (mapped, touched only as deep as it is used) unless this
    // thread has that much left.
    stacker::maybe_grow(STACK, STACK, || check_on_stack(sql, known))
}

fn check_on_stack(sql: &str, known: &dyn Fn(&str) -> bool) -> Result<Checked, ProtoError> {
    let refuse = |why: String| Err(ProtoError::Refused(why));
    if sql.trim().is_empty() {
        return refuse("the query is empty".into());
    }
    if sql.len() > MAX_SQL_BYTES {
        return refuse(format!(
            "the query is {} bytes; the limit is {MAX_SQL_BYTES}",
            sql.len()
        ));
    }
    let dialect = SQLiteDialect {};
    let statements = Parser::new(&dialect)
        .with_recursion_limit(MAX_NESTING)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| ProtoError::Refused(format!("cannot parse the query: {e}")))?;
    let statement = match statements.as_slice() {
        [] => return refuse("the query has no statement".into()),
        [one] => one,
        many => {
            return refuse(format!(
                "exactly one statement is allowed, found {}",
                many.len()
            ))
        }
    };
    let query = match statement {
        Statement::Query(q) => q,
        other => {
            return refuse(format!(
                "only SELECT is allowed, not {}",
                statement_kind(other)
            ))
        }
    };
    let mut walker = Walker::default();
    if let ControlFlow::Break(why) = query.visit(&mut walker) {
        return refuse(why);
    }
    let mut tables = BTreeSet::new();
    for name in walker.relations {
        if TABLE_FUNCTIONS.contains(&name.as_str()) {
            continue;
        }
        if !known(&name) {
            return refuse(format!("no such table: {name}"));
        }
        tables.insert(name);
    }
    Ok(Checked { tables })
}

/// A short name for a statement that is not a query, for the refusal message.
fn statement_kind(s: &Statement) -> String {
    let text = s.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    match words.as_slice() {
        [first, second, ..]
            if matches!(
                first.to_ascii_uppercase().as_str(),
                "CREATE" | "DROP" | "ALTER"
            ) =>
        {
            format!(
                "{} {}",
                first.to_ascii_uppercase(),
                second.to_ascii_uppercase()
            )
        }
        [first, ..] => first.to_ascii_uppercase(),
        [] => "an empty statement".into(),
    }
}

fn object_name(name: &ObjectName) -> String {
    // A schema-qualified name (main.processes, temp.x) is refused by keeping the
    // dots: no table is called that.
    name.0
        .iter()
        .map(|part| match part.as_ident() {
            Some(ident) => ident.value.to_ascii_lowercase(),
            None => part.to_string().to_ascii_lowercase(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[derive(Default)]
struct Walker {
    /// Names read that are not CTEs in scope where they are read.
    relations: Vec<String>,
    /// The CTE names of each enclosing query, innermost last. A CTE is visible
    /// only inside the query that defines it, so a CTE named `sqlite_master`
    /// in a subquery does not hide a read of the real one elsewhere.
    scopes: Vec<Vec<String>>,
}

impl Visitor for Walker {
    type Break = String;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        let ctes = query.with.iter().flat_map(|with| &with.cte_tables);
        self.scopes.push(
            ctes.map(|cte| cte.alias.name.value.to_ascii_lowercase())
                .collect(),
        );
        match query.body.as_ref() {
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                ControlFlow::Break("only SELECT is allowed, not a write".into())
            }
            SetExpr::Table(_) => ControlFlow::Break("`TABLE x` is not allowed; use SELECT".into()),
            _ => ControlFlow::Continue(()),
        }
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<String> {
        self.scopes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<String> {
        let name = object_name(relation);
        if !self.scopes.iter().any(|ctes| ctes.contains(&name)) {
            self.relations.push(name);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<String> {
        if let TableFactor::Table {
            name,
            args: Some(_),
            ..
        } = factor
        {
            let name = object_name(name);
            if !TABLE_FUNCTIONS.contains(&name.as_str()) {
                return ControlFlow::Break(format!("table function not allowed: {name}"));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
        if let Expr::Function(f) = expr {
            let name = object_name(&f.name);
            if !FUNCTIONS.contains(&name.as_str()) {
                return ControlFlow::Break(format!("function not allowed: {name}"));
            }
            if let FunctionArguments::Subquery(_) = f.args {
                return ControlFlow::Continue(());
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(t: &str) -> bool {
        crate::tables::is_known(t)
    }

    fn refused(sql: &str) -> String {
        match check(sql, &known) {
            Err(ProtoError::Refused(why)) => why,
            other => panic!("{sql:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn plain_selects_pass() {
        for sql in [
            "SELECT pid, name FROM processes WHERE pid = 1",
            "select * from users join groups using (gid);",
            "WITH p AS (SELECT pid FROM processes) SELECT count(*) FROM p",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3) SELECT x FROM c",
            "WITH a AS (SELECT 1 AS x), b AS (SELECT x FROM a) SELECT * FROM b, (SELECT x FROM a)",
            "SELECT upper(name) FROM processes WHERE name LIKE 'ba%'",
            "SELECT * FROM kernel_info JOIN hash USING (path)",
            "SELECT value FROM json_each('[1,2]')",
        ] {
            check(sql, &known).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[test]
    fn hostile_texts_are_refused() {
        assert!(refused("DELETE FROM processes").contains("only SELECT"));
        assert!(refused("ATTACH DATABASE '/tmp/x.db' AS x").contains("ATTACH"));
        assert!(refused("SELECT 1; SELECT 2").contains("exactly one statement"));
        assert!(refused("PRAGMA writable_schema=1").contains("PRAGMA"));
        assert!(refused("SELECT load_extension('/tmp/x.so')").contains("load_extension"));
        assert!(refused("SELECT * FROM sqlite_master").contains("no such table"));
        assert!(refused("SELECT * FROM main.processes").contains("no such table"));
        // A CTE hides a table only inside the query that defines it.
        assert!(refused(
            "SELECT * FROM (WITH sqlite_master AS (SELECT 1) SELECT * FROM sqlite_master), \
             sqlite_master"
        )
        .contains("no such table: sqlite_master"));
        assert!(refused("CREATE TEMP TABLE t(x)").contains("CREATE"));
        assert!(refused("").contains("empty"));
        assert!(refused(&"x".repeat(MAX_SQL_BYTES + 1)).contains("limit"));
        assert!(
            refused(&format!("SELECT {}1{}", "(".repeat(500), ")".repeat(500))).contains("parse")
        );
    }

    #[test]
    fn the_longest_operator_chain_fits_a_small_thread() {
        // Found while fuzzing: `1=1=…` as long as the limit allows overflowed the
        // 2 MiB stack of the agent's query threads.
        let sql = format!("SELECT 1{}", "=1".repeat((MAX_SQL_BYTES - 8) / 2));
        let run = move || check(&sql, &known).map(|c| c.tables.len());
        let thread = std::thread::Builder::new().stack_size(256 * 1024);
        assert_eq!(thread.spawn(run).unwrap().join().unwrap().unwrap(), 0);
    }
}
