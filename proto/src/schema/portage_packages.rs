//! `portage_packages`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "portage_packages",
    description: "List of currently installed packages.",
    columns: &[
        col!("package", Text),
        col!("version", Text),
        col!("slot", Text),
        col!("build_time", BigInt),
        col!("repository", Text),
        col!("eapi", BigInt),
        col!("size", BigInt),
        col!("world", Integer),
    ],
};
