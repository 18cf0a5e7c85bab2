//! `etc_hosts`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "etc_hosts",
    description: "Line-parsed /etc/hosts.",
    columns: &[
        col!("address", Text),
        col!("hostnames", Text),
        col!("pid_with_namespace", Integer, Hidden),
    ],
};
