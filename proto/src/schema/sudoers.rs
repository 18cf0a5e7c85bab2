//! `sudoers`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "sudoers",
    description: "Rules for running commands as other users via sudo.",
    columns: &[
        col!("source", Text),
        col!("header", Text),
        col!("rule_details", Text),
    ],
};
