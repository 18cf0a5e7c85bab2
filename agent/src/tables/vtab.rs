//! The glue between [`Table`] and SQLite's virtual-table interface. Every table
//! is registered as an eponymous-only module, so `SELECT * FROM processes`
//! works with no `CREATE VIRTUAL TABLE`.
//!
//! This is the one file with `unsafe`: rusqlite's `VTab` and `VTabCursor` are
//! unsafe traits because SQLite requires `sqlite3_vtab` (and
//! `sqlite3_vtab_cursor`) as the first field of the structs it is handed.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ffi::{c_int, CStr, CString};
use std::sync::{Arc, Mutex};

use rusqlite::ffi;
use rusqlite::types::Value;
use rusqlite::vtab::{
    Context, Filters, IndexConstraintOp, IndexInfo, Module, VTab, VTabConnection, VTabCursor,
};
use rusqlite::Connection;

use super::{Budget, ColumnOption, Constraint, Op, Row, ScanContext, Table, TableEnv};

/// State shared by every scan of one query.
#[derive(Debug)]
pub struct ScanShared {
    pub budget: Arc<Budget>,
    pub env: Arc<TableEnv>,
    /// Rows generated per table, for push-down checks and metrics.
    pub generated: Mutex<BTreeMap<&'static str, u64>>,
    /// Scans (xFilter calls) per table: an `IN` list handed over whole is one
    /// scan, and a join's inner table is scanned once per outer row.
    pub scans: Mutex<BTreeMap<&'static str, u64>>,
}

impl ScanShared {
    pub fn new(budget: Arc<Budget>, env: Arc<TableEnv>) -> Arc<Self> {
        Arc::new(Self {
            budget,
            env,
            generated: Mutex::new(BTreeMap::new()),
            scans: Mutex::new(BTreeMap::new()),
        })
    }
}

pub struct Aux {
    table: Arc<dyn Table>,
    shared: Arc<ScanShared>,
}

/// Registers `table` on `conn` under its own name.
pub fn register(
    conn: &Connection,
    table: Arc<dyn Table>,
    shared: Arc<ScanShared>,
) -> rusqlite::Result<()> {
    // A const promoted to 'static: rusqlite's Module is not Sync, so no static.
    const MODULE: Module<'static, SweepTab> = Module::eponymous_only_module();
    let name = CString::new(table.name()).expect("table names have no NUL");
    conn.create_module(name.as_c_str(), &MODULE, Some(Aux { table, shared }))
}

#[repr(C)]
struct SweepTab {
    /// Must be first: SQLite owns this part.
    base: ffi::sqlite3_vtab,
    table: Arc<dyn Table>,
    shared: Arc<ScanShared>,
}

/// One pushed-down constraint as planned: which argv slot, which column, how.
#[derive(Debug, PartialEq)]
struct Planned {
    column: usize,
    op: Op,
    whole_in_list: bool,
}

/// The plan travels from xBestIndex to xFilter as idx_str:
/// `<col_used hex>|<col>:<e|l>:<0|1>,…`.
fn encode_plan(col_used: u64, planned: &[Planned]) -> String {
    let items: Vec<String> = planned
        .iter()
        .map(|p| {
            let op = if p.op == Op::Eq { 'e' } else { 'l' };
            format!("{}:{}:{}", p.column, op, u8::from(p.whole_in_list))
        })
        .collect();
    format!("{col_used:x}|{}", items.join(","))
}

fn decode_plan(s: &str) -> Option<(u64, Vec<Planned>)> {
    let (used, rest) = s.split_once('|')?;
    let col_used = u64::from_str_radix(used, 16).ok()?;
    let mut planned = Vec::new();
    for item in rest.split(',').filter(|i| !i.is_empty()) {
        let mut parts = item.split(':');
        let column = parts.next()?.parse().ok()?;
        let op = match parts.next()? {
            "e" => Op::Eq,
            _ => Op::Like,
        };
        let whole_in_list = parts.next()? == "1";
        planned.push(Planned {
            column,
            op,
            whole_in_list,
        });
    }
    Some((col_used, planned))
}

unsafe impl<'vtab> VTab<'vtab> for SweepTab {
    type Aux = Aux;
    type Cursor = SweepCursor<'vtab>;

    fn connect(
        _db: &mut VTabConnection,
        aux: Option<&Aux>,
        _module_name: &[u8],
        _database_name: &[u8],
        _table_name: &[u8],
        _args: &[&[u8]],
    ) -> rusqlite::Result<(Cow<'static, CStr>, Self)> {
        let aux = aux.ok_or_else(|| rusqlite::Error::ModuleError("table without state".into()))?;
        let sql = CString::new(sweep_proto::schema::create_sql("x", aux.table.columns()))
            .map_err(|e| rusqlite::Error::ModuleError(e.to_string()))?;
        let tab = SweepTab {
            base: ffi::sqlite3_vtab::default(),
            table: aux.table.clone(),
            shared: aux.shared.clone(),
        };
        Ok((Cow::Owned(sql), tab))
    }

    fn best_index(&self, info: &mut IndexInfo) -> rusqlite::Result<bool> {
        let columns = self.table.columns();
        let mut chosen: Vec<(usize, usize, Op)> = Vec::new();
        for (i, c) in info.constraints().enumerate() {
            if !c.is_usable() || c.column() < 0 {
                continue;
            }
            let col = c.column() as usize;
            let Some(column) = columns.get(col) else {
                continue;
            };
            if !column.is_pushed_down() {
                continue;
            }
            let op = match c.operator() {
                IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ => Op::Eq,
                IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_LIKE => Op::Like,
                _ => continue,
            };
            // `x = 'A' COLLATE NOCASE` (or RTRIM) matches more than the exact
            // value a table would look up: such a constraint is left to SQLite.
            if op == Op::Eq && !info.collation(i)?.eq_ignore_ascii_case("BINARY") {
                continue;
            }
            chosen.push((i, col, op));
        }
        let mut planned = Vec::with_capacity(chosen.len());
        for (argv, (i, col, op)) in chosen.into_iter().enumerate() {
            info.constraint_usage(i).set_argv_index(argv as c_int + 1);
            // SQLite re-checks every row (omit = false): the table may return a
            // superset, e.g. for LIKE patterns it only narrows by prefix.
            let whole_in_list =
                op == Op::Eq && info.is_in_constraint(i)? && info.set_in_constraint(i, true)?;
            planned.push(Planned {
                column: col,
                op,
                whole_in_list,
            });
        }
        let required: Vec<usize> = columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.option == ColumnOption::Required)
            .map(|(i, _)| i)
            .collect();
        let has_required = planned.iter().any(|p| required.contains(&p.column));
        let has_index = planned.iter().any(|p| {
            matches!(
                columns[p.column].option,
                ColumnOption::Index | ColumnOption::Required
            ) && p.op == Op::Eq
        });
        // Costs steer SQLite to plans that hand us the constraints: a plan that
        // misses a required column is all but forbidden (xFilter then fails
        // with a readable error if SQLite has no other choice).
        let cost = if !required.is_empty() && !has_required {
            1e18
        } else if has_index {
            10.0
        } else if !planned.is_empty() {
            1_000.0
        } else {
            100_000.0
        };
        info.set_estimated_cost(cost);
        info.set_estimated_rows(if has_index { 1 } else { 1_000 });
        info.set_idx_str(&encode_plan(info.col_used(), &planned));
        Ok(true)
    }

    fn open(&'vtab mut self) -> rusqlite::Result<SweepCursor<'vtab>> {
        Ok(SweepCursor {
            base: ffi::sqlite3_vtab_cursor::default(),
            tab: self,
            rows: Vec::new(),
            pos: 0,
            col_used: u64::MAX,
        })
    }
}

#[repr(C)]
struct SweepCursor<'vtab> {
    /// Must be first: SQLite owns this part.
    base: ffi::sqlite3_vtab_cursor,
    tab: &'vtab SweepTab,
    rows: Vec<Row>,
    pos: usize,
    /// The columns this scan's query reads (SQLite's colUsed mask).
    col_used: u64,
}

impl SweepCursor<'_> {
    fn required_message(&self) -> Option<String> {
        let columns = self.tab.table.columns();
        let required: Vec<&str> = columns
            .iter()
            .filter(|c| c.option == ColumnOption::Required)
            .map(|c| c.name)
            .collect();
        (!required.is_empty()).then(|| {
            format!(
                "table {} requires a WHERE constraint on {} (= or LIKE)",
                self.tab.table.name(),
                required.join(" or ")
            )
        })
    }
}

unsafe impl VTabCursor for SweepCursor<'_> {
    fn filter(
        &mut self,
        _idx_num: c_int,
        idx_str: Option<&str>,
        args: &Filters<'_>,
    ) -> rusqlite::Result<()> {
        let (col_used, planned) = idx_str
            .and_then(decode_plan)
            .ok_or_else(|| rusqlite::Error::ModuleError("lost query plan".into()))?;
        let table = &self.tab.table;
        let columns = table.columns();
        let mut constraints = Vec::with_capacity(planned.len());
        for (k, p) in planned.iter().enumerate() {
            let values = if p.whole_in_list {
                let mut vals = Vec::new();
                let mut iter = args.in_values(k)?;
                while let Some(v) = rusqlite::fallible_iterator::FallibleIterator::next(&mut iter)?
                {
                    vals.push(super::owned(v));
                }
                vals
            } else {
                vec![args.get::<Value>(k)?]
            };
            constraints.push(Constraint {
                column: p.column,
                op: p.op,
                values,
            });
        }
        let has_required = constraints
            .iter()
            .any(|c| columns[c.column].option == ColumnOption::Required);
        if !has_required {
            if let Some(msg) = self.required_message() {
                return Err(rusqlite::Error::ModuleError(msg));
            }
        }
        let shared = &self.tab.shared;
        let ctx = ScanContext {
            table: table.name(),
            columns,
            col_used,
            constraints,
            budget: &shared.budget,
            env: &shared.env,
        };
        self.rows.clear();
        self.pos = 0;
        self.col_used = col_used;
        // SQLite calls us through C: a panic must not unwind out of here (that
        // aborts the agent). A table that panics fails its query instead.
        let rows = &mut self.rows;
        let generated =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| table.generate(&ctx, rows)));
        match generated {
            Ok(result) => result.map_err(|e| rusqlite::Error::ModuleError(e.to_string()))?,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                self.rows.clear();
                return Err(rusqlite::Error::ModuleError(format!(
                    "table {} failed: {what}",
                    table.name()
                )));
            }
        }
        if let Ok(mut generated) = shared.generated.lock() {
            *generated.entry(table.name()).or_default() += self.rows.len() as u64;
        }
        if let Ok(mut scans) = shared.scans.lock() {
            *scans.entry(table.name()).or_default() += 1;
        }
        Ok(())
    }

    fn next(&mut self) -> rusqlite::Result<()> {
        self.pos += 1;
        Ok(())
    }

    fn eof(&self) -> bool {
        self.pos >= self.rows.len()
    }

    fn column(&self, ctx: &mut Context, i: c_int) -> rusqlite::Result<()> {
        match self
            .rows
            .get(self.pos)
            .and_then(|r| r.values.get(i as usize))
        {
            Some(v) => ctx.set_result(v),
            None => ctx.set_result(&Value::Null),
        }
    }

    /// A row's identity, the same in every scan of one query. SQLite uses
    /// rowids to drop rows it has already returned when it answers an `OR`
    /// with one scan per branch, so a rowid must name the row, not its
    /// position in one scan (positions collide across scans and silently
    /// dropped rows). The identity is a hash of the values of the columns the
    /// query reads: two rows alike in all of those are alike in every branch
    /// of the `WHERE`, so treating them as one is exact.
    fn rowid(&self) -> rusqlite::Result<i64> {
        let Some(row) = self.rows.get(self.pos) else {
            return Ok(0);
        };
        Ok(row_identity(&row.values, self.col_used))
    }
}

/// A stable 64-bit hash of the values of the used columns (bit 63 of
/// `col_used` stands for column 63 and every later one, as in SQLite).
fn row_identity(values: &[Value], col_used: u64) -> i64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same in every scan and every run.
    let mut h = std::hash::DefaultHasher::new();
    for (i, v) in values.iter().enumerate() {
        if col_used & (1u64 << i.min(63)) == 0 {
            continue;
        }
        i.hash(&mut h);
        match v {
            Value::Null => 0u8.hash(&mut h),
            Value::Integer(n) => (1u8, n).hash(&mut h),
            Value::Real(f) => (2u8, f.to_bits()).hash(&mut h),
            Value::Text(t) => (3u8, t).hash(&mut h),
            Value::Blob(b) => (4u8, b).hash(&mut h),
        }
    }
    h.finish() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::TableSchema;
    use sweep_proto::col;

    struct Panicky;

    static PANICKY: TableSchema = TableSchema {
        name: "panicky",
        description: "A table whose generator panics.",
        columns: &[col!("x", Integer)],
    };

    impl Table for Panicky {
        fn schema(&self) -> &'static TableSchema {
            &PANICKY
        }

        fn generate(
            &self,
            _ctx: &ScanContext<'_>,
            _out: &mut Vec<Row>,
        ) -> Result<(), crate::AgentError> {
            panic!("bad input from the OS");
        }
    }

    #[test]
    fn a_panicking_table_fails_its_query_not_the_process() {
        let conn = Connection::open_in_memory().unwrap();
        let shared = ScanShared::new(Budget::unlimited(), Arc::new(TableEnv::default()));
        register(&conn, Arc::new(Panicky), shared).unwrap();
        let err = conn
            .query_row("SELECT x FROM panicky", [], |r| r.get::<_, i64>(0))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("table panicky failed: bad input from the OS"),
            "{err}"
        );
        // The connection still works.
        let one: i64 = conn.query_row("SELECT 1", [], |r| r.get(0)).unwrap();
        assert_eq!(one, 1);
    }

    #[test]
    fn plans_round_trip() {
        let planned = vec![
            Planned {
                column: 0,
                op: Op::Eq,
                whole_in_list: true,
            },
            Planned {
                column: 3,
                op: Op::Like,
                whole_in_list: false,
            },
        ];
        let (used, back) = decode_plan(&encode_plan(0x8000_0000_0000_0005, &planned)).unwrap();
        assert_eq!(used, 0x8000_0000_0000_0005);
        assert_eq!(back, planned);
    }
}
