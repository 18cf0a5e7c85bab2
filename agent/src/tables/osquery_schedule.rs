//! `osquery_schedule`: the queries sweep's scheduler runs on this agent
//! (single scheduled queries and pack queries, by the `name` their rows
//! carry), with the statistics of their runs since the agent started, in
//! osquery's units: `wall_time` in seconds (each run's truncated, summed),
//! the other times in milliseconds, sizes in bytes. `user_time` and
//! `system_time` are the CPU time of the thread that ran the query;
//! `average_memory` the mean growth of the agent's resident memory over the
//! runs in which it grew, with the rows still held; `output_size` the bytes
//! of column names and values of the rows returned. A failed run counts as
//! a run, as in osquery.
//!
//! `denylisted` (and its deprecated alias `blacklisted`) is 1 while the
//! query is deny-listed for having been stopped by a limit
//! (`limits.denylist_for`). Nothing scheduled (the shell, `sweep-agent
//! query`): no rows. The statistics live in memory only and start from zero
//! when the agent does (osquery keeps them in its database).

use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::osquery_schedule::TABLE as SCHEMA;

pub struct OsquerySchedule;

impl Table for OsquerySchedule {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        for (name, q, p) in ctx.env().schedule.queries() {
            let mut row = ctx.row();
            row.set("name", name)
                .set("query", q.query)
                .set("interval", q.interval)
                .set("executions", p.executions)
                .set("last_executed", p.last_executed)
                .set("denylisted", q.denylisted)
                .set("output_size", p.output_size)
                .set("wall_time", p.wall_time)
                .set("wall_time_ms", p.wall_time_ms)
                .set("last_wall_time_ms", p.last_wall_time_ms)
                .set("user_time", p.user_time)
                .set("last_user_time", p.last_user_time)
                .set("system_time", p.system_time)
                .set("last_system_time", p.last_system_time)
                .set("average_memory", p.average_memory)
                .set("last_memory", p.last_memory)
                .set("blacklisted", q.denylisted);
            out.push(row);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use rusqlite::types::Value;

    use super::*;
    use crate::engine::{Engine, Limits};
    use crate::tables::schedule_stats::RunCost;
    use crate::tables::testing::{pack_query, scan};
    use crate::tables::{Registry, TableEnv};

    fn env_with_two_queries() -> TableEnv {
        let env = TableEnv::default();
        let s = &env.schedule;
        s.schedule(
            "pack_ops_procs",
            "select pid from processes",
            300,
            Some("ops"),
        );
        s.schedule("uptime", "select * from uptime", 60, None);
        for (wall, user, system, mem, size, at) in [
            (1200u64, 40u64, 10u64, 8192u64, 300u64, 1_700_000_000u64),
            (900, 20, 30, 0, 100, 1_700_000_300),
        ] {
            s.record_run(
                "pack_ops_procs",
                &RunCost {
                    wall: Duration::from_millis(wall),
                    user: Duration::from_millis(user),
                    system: Duration::from_millis(system),
                    memory_growth: mem,
                    output_size: size,
                },
                at,
            );
        }
        s.set_denylisted("uptime", true);
        env
    }

    #[test]
    fn lists_scheduled_queries_with_their_statistics() {
        let env = env_with_two_queries();
        let rows = scan(&OsquerySchedule, &env);
        let got: Vec<Vec<Value>> = rows.iter().map(|r| r.values().to_vec()).collect();
        let t = |s: &str| Value::Text(s.into());
        let i = Value::Integer;
        assert_eq!(
            got,
            vec![
                vec![
                    t("pack_ops_procs"),
                    t("select pid from processes"),
                    i(300),
                    i(2),
                    i(1_700_000_300),
                    i(0),
                    i(400),
                    // 1 s + 0 s.
                    i(1),
                    i(2100),
                    i(900),
                    i(60),
                    i(20),
                    i(40),
                    i(30),
                    i(8192),
                    i(8192),
                    i(0),
                ],
                vec![
                    t("uptime"),
                    t("select * from uptime"),
                    i(60),
                    i(0),
                    i(0),
                    i(1),
                    i(0),
                    i(0),
                    i(0),
                    i(0),
                    i(0),
                    i(0),
                    i(0),
                    i(0),
                    i(0),
                    i(0),
                    i(1),
                ],
            ]
        );
        assert!(scan(&OsquerySchedule, &TableEnv::default()).is_empty());
    }

    /// osquery's monitoring pack query, unchanged.
    #[test]
    fn osquery_pack_query_runs() {
        let sql = pack_query("osquery-monitoring", "schedule");
        let engine = Engine::new(
            Arc::new(Registry::new(env_with_two_queries())),
            Limits::default(),
        );
        let out = engine.run(&sql);
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(
            out.columns,
            [
                "name",
                "interval",
                "executions",
                "output_size",
                "wall_time",
                "avg_user_time",
                "avg_system_time",
                "average_memory",
                "last_executed",
                "denylisted"
            ]
        );
        let t = |s: &str| Value::Text(s.into());
        let i = Value::Integer;
        assert_eq!(
            out.rows,
            vec![
                vec![
                    t("pack_ops_procs"),
                    i(300),
                    i(2),
                    i(400),
                    i(1),
                    i(30),
                    i(20),
                    i(8192),
                    i(1_700_000_300),
                    i(0)
                ],
                // Never run: 0/0 is NULL in SQL.
                vec![
                    t("uptime"),
                    i(60),
                    i(0),
                    i(0),
                    i(0),
                    Value::Null,
                    Value::Null,
                    i(0),
                    i(0),
                    i(1)
                ],
            ]
        );
        let out = engine.run("select name from osquery_schedule where blacklisted = 1");
        assert_eq!(out.rows, vec![vec![t("uptime")]]);
        assert!(
            Engine::new(Arc::new(Registry::default()), Limits::default())
                .run(&sql)
                .rows
                .is_empty()
        );
    }

    /// The engine charges a query the CPU time of the thread that ran it:
    /// a query that computes for a while has some, and no more than the
    /// wall time it took (plus two clock ticks of rounding).
    #[test]
    fn the_engine_measures_the_query_thread() {
        let engine = Engine::new(Arc::new(Registry::default()), Limits::default());
        let out = engine.run(
            "with recursive c(x) as (select 1 union all select x + 1 from c limit 1000000) \
             select count(*) from c",
        );
        assert!(out.error.is_none(), "{:?}", out.error);
        let cpu = out.user_time + out.system_time;
        let tick = Duration::from_millis(2000 / crate::tables::util::ticks_per_second());
        assert!(cpu > Duration::ZERO, "{out:?}");
        assert!(cpu <= out.elapsed + tick, "{cpu:?} > {:?}", out.elapsed);
    }
}
