//! `osquery_packs`: the osquery-format packs sweep's scheduler has loaded on
//! this agent (those that target it and Linux). `platform` is the pack's
//! platform string ("" when it names none); `version` (osquery's minimum
//! version) is "" and `shard` 0, as sweep packs have neither; the discovery
//! counters count, since the pack was loaded, the runs of its discovery
//! queries (`discovery_executions`) and the times their cached verdict was
//! used instead (`discovery_cache_hits`); `active` is 1 when its queries run:
//! it has no discovery queries, or they passed when last run (0 before
//! they first run). Nothing loaded: no rows.

use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::osquery_packs::TABLE as SCHEMA;

pub struct OsqueryPacks;

impl Table for OsqueryPacks {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        for (name, pack) in ctx.env().schedule.packs() {
            let mut row = ctx.row();
            row.set("name", name)
                .set("platform", pack.platform.as_str())
                .set("version", "")
                .set("shard", 0i64)
                .set("discovery_cache_hits", pack.discovery_cache_hits)
                .set("discovery_executions", pack.discovery_executions)
                .set("active", pack.active());
            out.push(row);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rusqlite::types::Value;

    use super::*;
    use crate::engine::{Engine, Limits};
    use crate::tables::testing::scan;
    use crate::tables::{Registry, TableEnv};

    fn env() -> TableEnv {
        let env = TableEnv::default();
        env.schedule
            .load_pack("incident-response", Some("linux,darwin"), false);
        env.schedule.load_pack("web", None, true);
        env.schedule.pack_discovery("web", false, false);
        env.schedule.pack_discovery("web", true, false);
        env.schedule.pack_discovery("web", true, false);
        env
    }

    #[test]
    fn lists_loaded_packs() {
        let rows = scan(&OsqueryPacks, &env());
        let got: Vec<Vec<Value>> = rows.iter().map(|r| r.values().to_vec()).collect();
        let t = |s: &str| Value::Text(s.into());
        let i = Value::Integer;
        assert_eq!(
            got,
            vec![
                vec![
                    t("incident-response"),
                    t("linux,darwin"),
                    t(""),
                    i(0),
                    i(0),
                    i(0),
                    i(1)
                ],
                vec![t("web"), t(""), t(""), i(0), i(2), i(1), i(0)],
            ]
        );
        assert!(scan(&OsqueryPacks, &TableEnv::default()).is_empty());
    }

    /// osquery's packs carry no query on this table; its documentation's
    /// example, through the engine.
    #[test]
    fn runs_through_the_engine() {
        let engine = Engine::new(Arc::new(Registry::new(env())), Limits::default());
        let out = engine.run("select name, active from osquery_packs where active = 1");
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(
            out.rows,
            vec![vec![
                Value::Text("incident-response".into()),
                Value::Integer(1)
            ]]
        );
    }
}
