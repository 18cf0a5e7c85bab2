//! `rpm_packages`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "rpm_packages",
    description: "RPM packages that are currently installed on the host system.",
    columns: &[
        col!("name", Text, Index),
        col!("version", Text, Index),
        col!("release", Text, Index),
        col!("source", Text),
        col!("size", BigInt),
        col!("sha1", Text),
        col!("arch", Text, Index),
        col!("epoch", Integer, Index),
        col!("install_time", Integer),
        col!("vendor", Text),
        col!("package_group", Text),
        col!("pid_with_namespace", Integer, Hidden),
        col!("mount_namespace_id", Text, Hidden),
    ],
};
