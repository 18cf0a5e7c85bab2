//! `authorized_keys`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "authorized_keys",
    description: "A line-delimited authorized_keys table.",
    columns: &[
        col!("uid", BigInt, Additional),
        col!("algorithm", Text),
        col!("key", Text),
        col!("options", Text),
        col!("comment", Text),
        col!("key_file", Text),
        col!("pid_with_namespace", Integer, Hidden),
    ],
};
