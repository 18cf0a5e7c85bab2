//! `osquery_events`: osquery's event publishers and subscribers. sweep's
//! agent has none yet: no inotify, audit, udev or netlink event source runs
//! in it (its evented tables, such as `hardware_events`, answer with no rows
//! for that reason), so this table is empty. It exists so that osquery's
//! monitoring pack query (`select name, publisher, type, subscriptions,
//! events, active from osquery_events`) runs unchanged. When event sources
//! come, they are listed here.

use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::osquery_events::TABLE as SCHEMA;

pub struct OsqueryEvents;

impl Table for OsqueryEvents {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    fn generate(&self, _ctx: &ScanContext<'_>, _out: &mut Vec<Row>) -> Result<(), AgentError> {
        // No event publisher or subscriber exists in the agent.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::{Engine, Limits};
    use crate::tables::testing::{pack_query, scan};
    use crate::tables::{Registry, TableEnv};

    #[test]
    fn osquery_pack_query_runs_and_finds_no_event_sources() {
        assert!(scan(&OsqueryEvents, &TableEnv::default()).is_empty());
        let engine = Engine::new(Arc::new(Registry::default()), Limits::default());
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
        assert!(out.rows.is_empty());
    }
}
