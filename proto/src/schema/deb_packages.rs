//! `deb_packages`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "deb_packages",
    description: "The installed DEB package database.",
    columns: &[
        col!("name", Text),
        col!("version", Text),
        col!("source", Text),
        col!("size", BigInt),
        col!("arch", Text),
        col!("revision", Text),
        col!("status", Text),
        col!("maintainer", Text),
        col!("section", Text),
        col!("priority", Text),
        col!("admindir", Text, Additional),
        col!("pid_with_namespace", Integer, Hidden),
        col!("mount_namespace_id", Text, Hidden),
    ],
};
