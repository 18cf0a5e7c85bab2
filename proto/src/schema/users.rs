//! `users`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "users",
    description:
        "Local user accounts (including domain accounts that have logged on locally (Windows)).",
    columns: &[
        col!("uid", BigInt, Index),
        col!("gid", BigInt),
        col!("uid_signed", BigInt),
        col!("gid_signed", BigInt),
        col!("username", Text, Additional),
        col!("description", Text),
        col!("directory", Text),
        col!("shell", Text),
        col!("uuid", Text, Index),
        col!("pid_with_namespace", Integer, Hidden),
        col!("include_remote", Integer, Hidden),
    ],
};
