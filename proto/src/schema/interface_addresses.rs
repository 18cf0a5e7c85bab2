//! `interface_addresses`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "interface_addresses",
    description: "Network interfaces and relevant metadata.",
    columns: &[
        col!("interface", Text),
        col!("address", Text),
        col!("mask", Text),
        col!("broadcast", Text),
        col!("point_to_point", Text),
        col!("type", Text),
    ],
};
