//! `groups`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "groups",
    description: "Local system groups.",
    columns: &[
        col!("gid", BigInt, Index),
        col!("gid_signed", BigInt),
        col!("groupname", Text),
        col!("pid_with_namespace", Integer, Hidden),
    ],
};
