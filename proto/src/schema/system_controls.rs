//! `system_controls`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "system_controls",
    description: "sysctl names, values, and settings information.",
    columns: &[
        col!("name", Text, Index),
        col!("oid", Text, Additional),
        col!("subsystem", Text, Additional),
        col!("current_value", Text),
        col!("config_value", Text),
        col!("type", Text),
    ],
};
