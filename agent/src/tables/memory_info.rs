//! `memory_info`: the main /proc/meminfo counters, in bytes.

use super::util::read_text;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::memory_info::TABLE as SCHEMA;

pub struct MemoryInfo;

/// Column ← /proc/meminfo key.
const KEYS: &[(&str, &str)] = &[
    ("memory_total", "MemTotal"),
    ("memory_free", "MemFree"),
    ("memory_available", "MemAvailable"),
    ("buffers", "Buffers"),
    ("cached", "Cached"),
    ("swap_cached", "SwapCached"),
    ("active", "Active"),
    ("inactive", "Inactive"),
    ("swap_total", "SwapTotal"),
    ("swap_free", "SwapFree"),
];

impl Table for MemoryInfo {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let text = read_text("/proc/meminfo").unwrap_or_default();
        let mut row = ctx.row();
        for (col, value) in parse(&text) {
            row.set(col, value);
        }
        // One row even when meminfo is unreadable: NULLs, as osquery does.
        out.push(row);
        Ok(())
    }
}

/// (column, bytes) for the keys present; meminfo counts in kB.
fn parse(text: &str) -> Vec<(&'static str, i64)> {
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let col = KEYS.iter().find(|(_, k)| *k == key)?.0;
            let kb: i64 = rest.split_whitespace().next()?.parse().ok()?;
            Some((col, kb * 1024))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, TableEnv};

    #[test]
    fn parses_meminfo() {
        let text = "MemTotal:       24684084 kB\nMemFree:          100 kB\n\
                    Active(anon):     7 kB\nActive:           42 kB\nSwapTotal:        0 kB\n";
        assert_eq!(
            parse(text),
            [
                ("memory_total", 24_684_084 * 1024),
                ("memory_free", 100 * 1024),
                ("active", 42 * 1024),
                ("swap_total", 0)
            ]
        );
    }

    /// The totals as the sysinfo(2) system call gives them.
    #[test]
    fn matches_sysinfo() {
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let ctx = ScanContext::all("memory_info", SCHEMA.columns, &budget, &env);
        let mut rows = Vec::new();
        MemoryInfo.generate(&ctx, &mut rows).unwrap();
        assert_eq!(rows.len(), 1);
        let int = |c: &str| match rows[0].get(c) {
            Some(Value::Integer(i)) => *i,
            other => panic!("{c}: {other:?}"),
        };
        let si = rustix::system::sysinfo();
        let unit = i64::from(si.mem_unit.max(1));
        assert_eq!(int("memory_total"), si.totalram as i64 * unit);
        assert_eq!(int("swap_total"), si.totalswap as i64 * unit);
        for c in [
            "memory_free",
            "memory_available",
            "buffers",
            "cached",
            "active",
            "inactive",
        ] {
            assert!(int(c) >= 0 && int(c) <= int("memory_total"), "{c}");
        }
        // Free memory moves while the test runs: within 5% of RAM.
        let slack = int("memory_total") / 20;
        assert!((int("memory_free") - si.freeram as i64 * unit).abs() < slack);
        assert!((int("buffers") - si.bufferram as i64 * unit).abs() < slack);
        assert!(int("swap_free") <= int("swap_total"));
    }
}
