//! `osquery_schedule`: osquery's columns for this table. `blacklisted` is the
//! deprecated alias of `denylisted`, declared last and hidden as osquery
//! declares column aliases.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "osquery_schedule",
    description: "Information about the current queries that are scheduled in osquery.",
    columns: &[
        col!("name", Text),
        col!("query", Text),
        col!("interval", Integer),
        col!("executions", BigInt),
        col!("last_executed", BigInt),
        col!("denylisted", Integer),
        col!("output_size", BigInt),
        col!("wall_time", BigInt),
        col!("wall_time_ms", BigInt),
        col!("last_wall_time_ms", BigInt),
        col!("user_time", BigInt),
        col!("last_user_time", BigInt),
        col!("system_time", BigInt),
        col!("last_system_time", BigInt),
        col!("average_memory", BigInt),
        col!("last_memory", BigInt),
        col!("blacklisted", Integer, Hidden),
    ],
};
