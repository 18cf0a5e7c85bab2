//! `process_memory_map`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "process_memory_map",
    description: "Process memory mapped files and pseudo device/regions.",
    columns: &[
        col!("pid", Integer, Index),
        col!("start", Text),
        col!("end", Text),
        col!("permissions", Text),
        col!("offset", BigInt),
        col!("device", Text),
        col!("inode", Integer),
        col!("path", Text),
        col!("pseudo", Integer),
    ],
};
