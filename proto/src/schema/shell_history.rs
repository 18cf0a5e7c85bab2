//! `shell_history`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "shell_history",
    description: "A line-delimited (command) table of per-user .*_history data.",
    columns: &[
        col!("uid", BigInt, Additional),
        col!("time", Integer),
        col!("command", Text),
        col!("history_file", Text),
    ],
};
