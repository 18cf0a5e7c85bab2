//! `os_version`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "os_version",
    description: "A single row containing the operating system name and version.",
    columns: &[
        col!("name", Text),
        col!("version", Text),
        col!("major", Integer),
        col!("minor", Integer),
        col!("patch", Integer),
        col!("build", Text),
        col!("platform", Text),
        col!("platform_like", Text),
        col!("codename", Text),
        col!("arch", Text),
        col!("pid_with_namespace", Integer, Hidden),
        col!("mount_namespace_id", Text, Hidden),
    ],
};
