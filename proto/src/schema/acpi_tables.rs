//! `acpi_tables`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "acpi_tables",
    description: "Firmware ACPI functional table common metadata and content.",
    columns: &[col!("name", Text), col!("size", Integer), col!("md5", Text)],
};
