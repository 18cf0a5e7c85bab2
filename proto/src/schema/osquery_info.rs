//! `osquery_info`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "osquery_info",
    description: "Top level information about the running version of osquery.",
    columns: &[
        col!("pid", Integer),
        col!("uuid", Text),
        col!("instance_id", Text),
        col!("version", Text),
        col!("config_hash", Text),
        col!("config_valid", Integer),
        col!("extensions", Text),
        col!("build_platform", Text),
        col!("build_distro", Text),
        col!("start_time", Integer),
        col!("watcher", Integer),
        col!("platform_mask", Integer),
    ],
};
