//! `osquery_events`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "osquery_events",
    description: "Information about the event publishers and subscribers.",
    columns: &[
        col!("name", Text),
        col!("publisher", Text),
        col!("type", Text),
        col!("subscriptions", Integer),
        col!("events", Integer),
        col!("refreshes", Integer),
        col!("active", Integer),
    ],
};
