//! `uptime`: time since boot, from sysinfo(2) as osquery reads it.

use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::uptime::TABLE as SCHEMA;

pub struct Uptime;

impl Table for Uptime {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let total = rustix::system::sysinfo().uptime;
        if total < 0 {
            return Ok(());
        }
        out.push(uptime_row(ctx, total));
        Ok(())
    }
}

fn uptime_row(ctx: &ScanContext<'_>, total: i64) -> Row {
    let mut row = ctx.row();
    row.set("days", total / 86_400)
        .set("hours", total / 3_600 % 24)
        .set("minutes", total / 60 % 60)
        .set("seconds", total % 60)
        .set("total_seconds", total);
    row
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, TableEnv};

    fn ints(row: &Row) -> Vec<i64> {
        row.values()
            .iter()
            .map(|v| match v {
                Value::Integer(i) => *i,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn matches_proc_uptime() {
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let ctx = ScanContext::all("uptime", SCHEMA.columns, &budget, &env);
        let before: f64 = std::fs::read_to_string("/proc/uptime")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut rows = Vec::new();
        Uptime.generate(&ctx, &mut rows).unwrap();
        let after: f64 = std::fs::read_to_string("/proc/uptime")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(rows.len(), 1);
        let v = ints(&rows[0]);
        // sysinfo rounds to the nearest second, /proc/uptime has hundredths.
        assert!(
            v[4] as f64 >= before.floor() - 1.0 && v[4] as f64 <= after.ceil() + 1.0,
            "{v:?}"
        );
        assert_eq!(v[0] * 86_400 + v[1] * 3_600 + v[2] * 60 + v[3], v[4]);

        // 3 days, 4:05:06
        let split = uptime_row(&ctx, 3 * 86_400 + 4 * 3_600 + 5 * 60 + 6);
        assert_eq!(ints(&split), [3, 4, 5, 6, 273_906]);
    }
}
