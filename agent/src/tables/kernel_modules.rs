//! `kernel_modules`: the loaded modules of /proc/modules. A kernel built
//! without module support has no such file, hence no rows.

use super::util::read_text;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::kernel_modules::TABLE as SCHEMA;

pub struct KernelModules;

#[derive(Debug, PartialEq)]
struct Module {
    name: String,
    size: Option<i64>,
    used_by: String,
    status: String,
    address: String,
}

/// `name size refcount used_by status address [taints]` per line; used_by is
/// `-` or a list with a trailing comma, which osquery drops.
fn parse(text: &str) -> Vec<Module> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 6 {
                return None;
            }
            Some(Module {
                name: f[0].to_string(),
                size: f[1].parse().ok(),
                used_by: f[3].trim_end_matches(',').to_string(),
                status: f[4].to_string(),
                address: f[5].to_string(),
            })
        })
        .collect()
}

impl Table for KernelModules {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let Some(text) = read_text("/proc/modules") else {
            return Ok(());
        };
        for m in parse(&text) {
            let mut row = ctx.row();
            row.set("name", m.name)
                .set_opt("size", m.size)
                .set("used_by", m.used_by)
                .set("status", m.status)
                .set("address", m.address);
            out.push(row);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{Budget, TableEnv};

    #[test]
    fn parses_proc_modules_lines() {
        let text = "ext4 1040384 1 - Live 0xffffffffc0a1e000\n\
                    mbcache 16384 1 ext4, Live 0xffffffffc09f0000\n\
                    nvidia 56885248 2 nvidia_uvm,nvidia_modeset, Live 0xffffffffc1000000 (POE)\n\
                    broken 1 2\n";
        let m = parse(text);
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[1],
            Module {
                name: "mbcache".into(),
                size: Some(16384),
                used_by: "ext4".into(),
                status: "Live".into(),
                address: "0xffffffffc09f0000".into(),
            }
        );
        assert_eq!(m[0].used_by, "-");
        assert_eq!(m[2].used_by, "nvidia_uvm,nvidia_modeset");
        assert_eq!(m[2].address, "0xffffffffc1000000");
    }

    /// Each module as sysfs describes it: its state and its holders.
    #[test]
    fn loaded_modules_match_sysfs() {
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let ctx = ScanContext::all("kernel_modules", SCHEMA.columns, &budget, &env);
        let mut rows = Vec::new();
        KernelModules.generate(&ctx, &mut rows).unwrap();
        if !std::path::Path::new("/proc/modules").exists() {
            assert!(rows.is_empty());
            return;
        }
        let text = |r: &Row, c: &str| match r.get(c) {
            Some(Value::Text(t)) => t.clone(),
            other => panic!("{c}: {other:?}"),
        };
        for row in &rows {
            let name = text(row, "name");
            let dir = std::path::Path::new("/sys/module").join(&name);
            let Ok(state) = std::fs::read_to_string(dir.join("initstate")) else {
                continue; // unloaded since
            };
            assert_eq!(state.trim(), text(row, "status").to_lowercase(), "{name}");
            let holders: BTreeSet<String> = std::fs::read_dir(dir.join("holders"))
                .map(|d| {
                    d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default();
            let used_by: BTreeSet<String> = text(row, "used_by")
                .split(',')
                .filter(|u| *u != "-" && *u != "[permanent]" && !u.is_empty())
                .map(String::from)
                .collect();
            assert_eq!(used_by, holders, "{name}");
        }
    }
}
