//! `logged_in_users`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "logged_in_users",
    description: "Users with an active shell on the system.",
    columns: &[
        col!("type", Text),
        col!("user", Text),
        col!("tty", Text),
        col!("host", Text),
        col!("time", BigInt),
        col!("pid", Integer),
    ],
};
