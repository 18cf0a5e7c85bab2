//! `process_envs`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "process_envs",
    description: "A key/value table of environment variables for each process.",
    columns: &[
        col!("pid", Integer, Index),
        col!("key", Text),
        col!("value", Text),
    ],
};
