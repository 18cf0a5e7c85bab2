//! `process_open_files`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "process_open_files",
    description: "File descriptors for each process.",
    columns: &[
        col!("pid", BigInt, Index),
        col!("fd", BigInt),
        col!("path", Text),
    ],
};
