//! `osquery_flags`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "osquery_flags",
    description: "Configurable flags that modify osquery's behavior.",
    columns: &[
        col!("name", Text),
        col!("type", Text),
        col!("description", Text),
        col!("default_value", Text),
        col!("value", Text),
        col!("shell_only", Integer),
    ],
};
