//! `hash`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "hash",
    description: "Filesystem hash data.",
    columns: &[
        col!("path", Text, Required),
        col!("directory", Text, Required),
        col!("md5", Text),
        col!("sha1", Text),
        col!("sha256", Text),
        col!("pid_with_namespace", Integer, Hidden),
        col!("mount_namespace_id", Text, Hidden),
    ],
};
