//! `disk_encryption`: osquery's columns for this table (its Linux ones; the
//! macOS-only user and FileVault columns are left out, as on Linux).

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "disk_encryption",
    description: "Disk encryption status and information.",
    columns: &[
        col!("name", Text, Index),
        col!("uuid", Text),
        col!("encrypted", Integer),
        col!("type", Text),
        col!("encryption_status", Text),
    ],
};
