//! `cpuid`: osquery's columns for this table (osquery builds it on x86_64).

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "cpuid",
    description: "Useful CPU features from the cpuid ASM call.",
    columns: &[
        col!("feature", Text),
        col!("value", Text),
        col!("output_register", Text),
        col!("output_bit", Integer),
        col!("input_eax", Text),
    ],
};
