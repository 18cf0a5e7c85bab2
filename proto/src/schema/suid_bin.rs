//! `suid_bin`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "suid_bin",
    description: "suid binaries in common locations.",
    columns: &[
        col!("path", Text),
        col!("username", Text),
        col!("groupname", Text),
        col!("permissions", Text),
        col!("pid_with_namespace", Integer, Hidden),
    ],
};
