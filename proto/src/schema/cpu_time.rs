//! `cpu_time`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "cpu_time",
    description: "Displays information from /proc/stat file about the time the cpu cores spent in different parts of the system.",
    columns: &[
        col!("core", Integer),
        col!("user", BigInt),
        col!("nice", BigInt),
        col!("system", BigInt),
        col!("idle", BigInt),
        col!("iowait", BigInt),
        col!("irq", BigInt),
        col!("softirq", BigInt),
        col!("steal", BigInt),
        col!("guest", BigInt),
        col!("guest_nice", BigInt),
    ],
};
