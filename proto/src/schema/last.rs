//! `last`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "last",
    description: "System logins and logouts.",
    columns: &[
        col!("username", Text),
        col!("tty", Text),
        col!("pid", Integer),
        col!("type", Integer),
        col!("type_name", Text),
        col!("time", Integer),
        col!("host", Text),
    ],
};
