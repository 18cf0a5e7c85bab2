//! `memory_info`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "memory_info",
    description: "Main memory information in bytes.",
    columns: &[
        col!("memory_total", BigInt),
        col!("memory_free", BigInt),
        col!("memory_available", BigInt),
        col!("buffers", BigInt),
        col!("cached", BigInt),
        col!("swap_cached", BigInt),
        col!("active", BigInt),
        col!("inactive", BigInt),
        col!("swap_total", BigInt),
        col!("swap_free", BigInt),
    ],
};
