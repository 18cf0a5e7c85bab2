//! `osquery_info`: osquery's self-description, answered for sweep's agent
//! so that fleet tooling written for osquery finds what it expects.

use super::os_version::os_release_id;
use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::osquery_info::TABLE as SCHEMA;

pub struct OsqueryInfo;

/// osquery's PlatformType bits: POSIX (0x01) | LINUX (0x08).
const PLATFORM_MASK: i64 = 0x01 | 0x08;

impl Table for OsqueryInfo {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let env = ctx.env();
        let facts = &env.facts;
        let mut row = ctx.row();
        row.set("pid", std::process::id())
            .set("uuid", facts.host_id.as_str())
            .set("instance_id", facts.instance_id.as_str())
            .set("version", env!("CARGO_PKG_VERSION"))
            .set("config_hash", facts.config_hash.as_str())
            // The agent runs only with a configuration it could load.
            .set("config_valid", 1i64)
            .set("extensions", "inactive")
            .set("build_platform", "linux")
            .set("start_time", facts.start_time)
            // No watchdog process: osquery's value when not a worker.
            .set("watcher", -1i64)
            .set("platform_mask", PLATFORM_MASK);
        if ctx.used("build_distro") {
            row.set(
                "build_distro",
                os_release_id(&env.paths.os_release).unwrap_or_default(),
            );
        }
        out.push(row);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;
    use crate::tables::{AgentFacts, Budget, TableEnv};

    #[test]
    fn reports_this_agent() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = TableEnv {
            facts: AgentFacts {
                instance_id: "9f1c2b0e-1111-4222-8333-444455556666".into(),
                host_id: "web-1".into(),
                start_time: 1_700_000_000,
                config_hash: "abc123".into(),
            },
            ..TableEnv::default()
        };
        env.paths.os_release = dir.path().join("os-release");
        std::fs::write(
            &env.paths.os_release,
            "NAME=\"Debian GNU/Linux\"\nID=debian\n",
        )
        .unwrap();
        let budget = Budget::unlimited();
        let ctx = ScanContext::all("osquery_info", SCHEMA.columns, &budget, &env);
        let mut rows = Vec::new();
        OsqueryInfo.generate(&ctx, &mut rows).unwrap();
        assert_eq!(rows.len(), 1);
        let get = |c: &str| rows[0].get(c).unwrap().clone();
        let t = |s: &str| Value::Text(s.into());

        // Our pid as the kernel names it: the target of /proc/self.
        let me: i64 = std::fs::read_link("/proc/self")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(get("pid"), Value::Integer(me));
        assert_eq!(get("uuid"), t("web-1"));
        assert_eq!(
            get("instance_id"),
            t("9f1c2b0e-1111-4222-8333-444455556666")
        );
        assert_eq!(get("config_hash"), t("abc123"));
        assert_eq!(get("version"), t(env!("CARGO_PKG_VERSION")));
        assert_eq!(get("start_time"), Value::Integer(1_700_000_000));
        assert_eq!(get("build_distro"), t("debian"));
        assert_eq!(get("build_platform"), t("linux"));
        assert_eq!(get("extensions"), t("inactive"));
        assert_eq!(get("config_valid"), Value::Integer(1));
        assert_eq!(get("watcher"), Value::Integer(-1));
        assert_eq!(get("platform_mask"), Value::Integer(9));
    }
}
