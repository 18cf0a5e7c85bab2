//! `kernel_modules`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "kernel_modules",
    description: "Linux kernel modules both loaded and within the load search path.",
    columns: &[
        col!("name", Text),
        col!("size", BigInt),
        col!("used_by", Text),
        col!("status", Text),
        col!("address", Text),
    ],
};
