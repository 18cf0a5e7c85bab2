//! `block_devices`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "block_devices",
    description: "Block (buffered access) device file nodes: disks, ramdisks, and DMG containers.",
    columns: &[
        col!("name", Text, Index),
        col!("parent", Text),
        col!("vendor", Text),
        col!("model", Text),
        col!("serial", Text),
        col!("size", BigInt),
        col!("block_size", Integer),
        col!("uuid", Text),
        col!("type", Text),
        col!("label", Text),
    ],
};
