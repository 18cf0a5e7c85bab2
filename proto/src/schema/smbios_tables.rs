//! `smbios_tables`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "smbios_tables",
    description: "BIOS (DMI) structure common details and content.",
    columns: &[
        col!("number", Integer),
        col!("type", Integer),
        col!("description", Text),
        col!("handle", Integer),
        col!("header_size", Integer),
        col!("size", Integer),
        col!("md5", Text),
    ],
};
