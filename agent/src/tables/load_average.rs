//! `load_average`: the 1, 5 and 15 minute load averages of /proc/loadavg
//! (what getloadavg(3) reads), printed with six decimals as osquery does.

use super::util::read_text;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::load_average::TABLE as SCHEMA;

pub struct LoadAverage;

const PERIODS: [&str; 3] = ["1m", "5m", "15m"];

impl Table for LoadAverage {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let Some(loads) = read_text("/proc/loadavg").and_then(|t| parse(&t)) else {
            return Ok(());
        };
        for (period, load) in PERIODS.iter().zip(loads) {
            let mut row = ctx.row();
            row.set("period", *period)
                .set("average", format!("{load:.6}"));
            out.push(row);
        }
        Ok(())
    }
}

fn parse(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|w| w.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, TableEnv};

    fn scan() -> Vec<(String, String)> {
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let ctx = ScanContext::all("load_average", SCHEMA.columns, &budget, &env);
        let mut rows = Vec::new();
        LoadAverage.generate(&ctx, &mut rows).unwrap();
        rows.iter()
            .map(|r| match (r.get("period"), r.get("average")) {
                (Some(Value::Text(p)), Some(Value::Text(a))) => (p.clone(), a.clone()),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    /// The same loads from sysinfo(2), which counts in 1/65536 and which
    /// /proc/loadavg rounds to hundredths.
    #[test]
    fn matches_sysinfo_loads() {
        let rows = scan();
        let si = rustix::system::sysinfo();
        assert_eq!(
            rows.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            PERIODS
        );
        for ((_, avg), raw) in rows.iter().zip(si.loads) {
            let (int, frac) = avg.split_once('.').unwrap();
            assert_eq!(frac.len(), 6, "{avg}");
            assert!(int.parse::<u64>().is_ok(), "{avg}");
            let ours: f64 = avg.parse().unwrap();
            let theirs = raw as f64 / 65_536.0;
            // The kernel recomputes loads every 5 s: allow for one update.
            assert!((ours - theirs).abs() < 0.5, "{ours} vs {theirs}");
        }
        assert_eq!(
            parse("0.39 1.75 1.46 1/85 23728\n"),
            Some([0.39, 1.75, 1.46])
        );
        assert_eq!(parse("0.39 x"), None);
        assert_eq!(format!("{:.6}", 0.39f64), "0.390000");
    }
}
