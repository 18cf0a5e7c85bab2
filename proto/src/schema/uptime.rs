//! `uptime`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "uptime",
    description: "Track time passed since last boot. Some systems track this as calendar time, some as runtime.",
    columns: &[
        col!("days", Integer),
        col!("hours", Integer),
        col!("minutes", Integer),
        col!("seconds", Integer),
        col!("total_seconds", BigInt),
    ],
};
