//! `etc_services`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "etc_services",
    description: "Line-parsed /etc/services.",
    columns: &[
        col!("name", Text),
        col!("port", Integer),
        col!("protocol", Text),
        col!("aliases", Text),
        col!("comment", Text),
    ],
};
