//! Helpers shared by the tables' unit tests: run one scan the way the vtab
//! glue does, and read typed values out of rows.

use rusqlite::types::Value;

use super::{Budget, Op, Row, ScanContext, Table, TableEnv};

/// Every row of one scan of `table`, all columns used, with `constraints`
/// pushed down.
pub fn scan_with(
    table: &dyn Table,
    env: &TableEnv,
    constraints: &[(&str, Op, Vec<Value>)],
) -> Vec<Row> {
    let budget = Budget::unlimited();
    let mut ctx = ScanContext::all(table.name(), table.columns(), &budget, env);
    for (column, op, values) in constraints {
        ctx = ctx.with_constraint(column, *op, values.clone());
    }
    let mut rows = Vec::new();
    table
        .generate(&ctx, &mut rows)
        .unwrap_or_else(|e| panic!("{}: {e}", table.name()));
    rows
}

/// Every row of one unconstrained scan of `table`.
pub fn scan(table: &dyn Table, env: &TableEnv) -> Vec<Row> {
    scan_with(table, env, &[])
}

/// A TEXT value; panics (failing the test) on anything else.
pub fn text(row: &Row, col: &str) -> String {
    match row.get(col) {
        Some(Value::Text(t)) => t.clone(),
        other => panic!("{col}: {other:?}"),
    }
}

/// An INTEGER value; panics (failing the test) on anything else.
pub fn int(row: &Row, col: &str) -> i64 {
    match row.get(col) {
        Some(Value::Integer(i)) => *i,
        other => panic!("{col}: {other:?}"),
    }
}

/// The text of one of osquery's pack queries, from the reference copy of
/// osquery's packs (`shared/reference/osquery-pack-queries.json`, next to
/// the repository), exactly as osquery ships it.
pub fn pack_query(pack: &str, name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/osquery-pack-queries.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let queries: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    queries
        .iter()
        .find(|q| q["pack"] == pack && q["name"] == name)
        .and_then(|q| q["query"].as_str())
        .unwrap_or_else(|| panic!("no pack query {pack}/{name}"))
        .to_string()
}

/// Writes a fixture file, making its directories.
pub fn write_file(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a fixture path has a parent")).unwrap();
    std::fs::write(path, text).unwrap();
}
