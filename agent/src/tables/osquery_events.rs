//! `osquery_events`: the agent's event publishers (the kernel sources) and
//! subscribers (the event tables), as osquery lists its own. A publisher's
//! `events` counts what it read from the kernel, a subscriber's what its
//! buffer holds; `active` is 0 for a source the host cannot provide, that
//! is off, or that is not running (outside the agent daemon). Why a source
//! is inactive is in the agent's log and in a query on its table.

use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use crate::events::State;
use sweep_proto::schema::osquery_events::TABLE as SCHEMA;

pub struct OsqueryEvents;

impl Table for OsqueryEvents {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        let Some(events) = &ctx.env().events else {
            return Ok(());
        };
        for s in events.stats() {
            let active = s.state == State::Active;
            out.push(row(
                ctx,
                s.source,
                s.source,
                "publisher",
                s.received,
                active,
            ));
            out.push(row(
                ctx,
                s.table,
                s.source,
                "subscriber",
                s.buffered,
                active,
            ));
        }
        Ok(())
    }
}

fn row(
    ctx: &ScanContext<'_>,
    name: &str,
    publisher: &str,
    kind: &str,
    events: u64,
    active: bool,
) -> Row {
    let mut row = ctx.row();
    row.set("name", name)
        .set("publisher", publisher)
        .set("type", kind)
        .set("subscriptions", 1)
        .set("events", events as i64)
        .set("refreshes", 0)
        .set("active", i64::from(active));
    row
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rusqlite::types::Value;

    use super::*;
    use crate::config::EventsConfig;
    use crate::engine::{Engine, Limits};
    use crate::events::{proc_connector, Events};
    use crate::tables::testing::pack_query;
    use crate::tables::{Registry, TableEnv};

    #[test]
    fn osquery_pack_query_lists_each_source_and_table_with_its_state() {
        let events = Events::new(&EventsConfig::default());
        events.set_state(proc_connector::NAME, State::Active);
        events.set_state(
            crate::events::sock_destroy::NAME,
            State::Failed("permission denied".into()),
        );
        let engine = Engine::new(
            Arc::new(Registry::new(TableEnv {
                events: Some(events),
                ..TableEnv::default()
            })),
            Limits::default(),
        );
        let out = engine.run(&pack_query("osquery-monitoring", "events"));
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(
            out.columns,
            [
                "name",
                "publisher",
                "type",
                "subscriptions",
                "events",
                "active"
            ]
        );
        let rows: Vec<(String, i64)> = out
            .rows
            .iter()
            .map(|r| match (&r[0], &r[5]) {
                (Value::Text(n), Value::Integer(a)) => (n.clone(), *a),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("process_connector".to_string(), 1),
                ("process_events".to_string(), 1),
                ("sock_diag".to_string(), 0),
                ("socket_events".to_string(), 0),
                ("inotify".to_string(), 0),
                ("file_events".to_string(), 0),
            ]
        );
        // Outside the daemon there are no sources, and no rows.
        let bare = Engine::new(Arc::new(Registry::default()), Limits::default());
        let out = bare.run("SELECT * FROM osquery_events");
        assert!(out.error.is_none() && out.rows.is_empty(), "{out:?}");
        // A query on an event table there fails, saying why.
        let out = bare.run("SELECT * FROM process_events");
        let e = out.error.expect("an error").to_string();
        assert!(e.contains("sweep-agent run"), "{e}");
    }
}
