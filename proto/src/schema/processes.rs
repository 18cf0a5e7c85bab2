//! `processes`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "processes",
    description: "All running processes on the host system.",
    columns: &[
        col!("pid", BigInt, Index),
        col!("name", Text),
        col!("path", Text),
        col!("cmdline", Text),
        col!("state", Text),
        col!("cwd", Text),
        col!("root", Text),
        col!("uid", BigInt),
        col!("gid", BigInt),
        col!("euid", BigInt),
        col!("egid", BigInt),
        col!("suid", BigInt),
        col!("sgid", BigInt),
        col!("on_disk", Integer),
        col!("wired_size", BigInt),
        col!("resident_size", BigInt),
        col!("total_size", BigInt),
        col!("user_time", BigInt),
        col!("system_time", BigInt),
        col!("disk_bytes_read", BigInt),
        col!("disk_bytes_written", BigInt),
        col!("start_time", BigInt),
        col!("parent", BigInt),
        col!("pgroup", BigInt),
        col!("threads", Integer),
        col!("nice", Integer),
        col!("cgroup_path", Text),
    ],
};
