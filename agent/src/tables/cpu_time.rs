//! `cpu_time`: per-CPU time counters of /proc/stat, in clock ticks.

use super::util::read_text;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::cpu_time::TABLE as SCHEMA;

pub struct CpuTime;

/// The counter columns, in /proc/stat's order.
const COUNTERS: [&str; 10] = [
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
];

impl Table for CpuTime {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let text = read_text("/proc/stat").unwrap_or_default();
        for (core, counters) in parse(&text) {
            let mut row = ctx.row();
            row.set("core", core);
            for (col, v) in COUNTERS.iter().zip(counters) {
                row.set_opt(col, v);
            }
            out.push(row);
        }
        Ok(())
    }
}

/// `cpuN user nice system idle iowait irq softirq [steal guest guest_nice]`
/// lines; the aggregate `cpu` line is skipped. Counters older kernels lack
/// are 0, as in osquery.
fn parse(text: &str) -> Vec<(i64, [Option<i64>; 10])> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let core: i64 = words.next()?.strip_prefix("cpu")?.parse().ok()?;
            let values: Vec<&str> = words.collect();
            if values.len() < 7 {
                return None;
            }
            let mut counters = [Some(0); 10];
            for (slot, v) in counters.iter_mut().zip(&values) {
                *slot = v.parse().ok();
            }
            Some((core, counters))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, TableEnv};

    #[test]
    fn parses_proc_stat() {
        let text = "cpu  142045 0 14904 40295 825 0 134 68 0 0\n\
                    cpu0 70066 1 6850 22023 175 2 13 32 4 5\n\
                    cpu1 71978 0 8054 18272 649 0 121\n\
                    cpu2 1 2\n\
                    intr 1 2 3\nctxt 5\n";
        let s = Some;
        assert_eq!(
            parse(text),
            [
                (
                    0,
                    [
                        s(70066),
                        s(1),
                        s(6850),
                        s(22023),
                        s(175),
                        s(2),
                        s(13),
                        s(32),
                        s(4),
                        s(5)
                    ]
                ),
                (
                    1,
                    [
                        s(71978),
                        s(0),
                        s(8054),
                        s(18272),
                        s(649),
                        s(0),
                        s(121),
                        s(0),
                        s(0),
                        s(0)
                    ]
                ),
            ]
        );
    }

    /// One row per online CPU (getconf), each counter between two readings
    /// of /proc/stat taken around the scan.
    #[test]
    fn matches_proc_stat_and_getconf() {
        let snapshot = || -> Vec<Vec<i64>> {
            std::fs::read_to_string("/proc/stat")
                .unwrap()
                .lines()
                .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
                .map(|l| {
                    l.split(' ')
                        .skip(1)
                        .filter_map(|w| w.parse().ok())
                        .collect()
                })
                .collect()
        };
        let before = snapshot();
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let ctx = ScanContext::all("cpu_time", SCHEMA.columns, &budget, &env);
        let mut rows = Vec::new();
        CpuTime.generate(&ctx, &mut rows).unwrap();
        let after = snapshot();

        let online = std::process::Command::new("getconf")
            .arg("_NPROCESSORS_ONLN")
            .output()
            .unwrap();
        let online: usize = String::from_utf8(online.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(rows.len(), online);
        for (i, row) in rows.iter().enumerate() {
            let v: Vec<i64> = row
                .values()
                .iter()
                .map(|v| match v {
                    Value::Integer(i) => *i,
                    other => panic!("{other:?}"),
                })
                .collect();
            for (k, col) in COUNTERS.iter().enumerate() {
                // Idle and iowait are estimates on tickless kernels and may
                // step back a little.
                let slack = if matches!(*col, "idle" | "iowait") {
                    100
                } else {
                    0
                };
                let (lo, hi) = (before[i][k].min(after[i][k]), before[i][k].max(after[i][k]));
                assert!(
                    lo - slack <= v[k + 1] && v[k + 1] <= hi + slack,
                    "cpu{i} {col}"
                );
            }
        }
    }
}
