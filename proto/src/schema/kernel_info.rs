//! `kernel_info`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "kernel_info",
    description: "Basic active kernel information.",
    columns: &[
        col!("version", Text),
        col!("arguments", Text),
        col!("path", Text),
        col!("device", Text),
    ],
};
