//! `mounts`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "mounts",
    description: "System mounted devices and filesystems (not process specific).",
    columns: &[
        col!("device", Text),
        col!("device_alias", Text),
        col!("path", Text),
        col!("type", Text),
        col!("blocks_size", BigInt),
        col!("blocks", BigInt),
        col!("blocks_free", BigInt),
        col!("blocks_available", BigInt),
        col!("inodes", BigInt),
        col!("inodes_free", BigInt),
        col!("flags", Text),
    ],
};
