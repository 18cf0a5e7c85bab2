//! `process_events`: osquery's columns for this evented table (posix spec
//! plus its Linux extension).

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "process_events",
    description: "Track time/action process executions.",
    columns: &[
        col!("pid", BigInt),
        col!("path", Text),
        col!("mode", Text),
        col!("cmdline", Text),
        col!("cmdline_size", BigInt, Hidden),
        col!("env", Text, Hidden),
        col!("env_count", BigInt, Hidden),
        col!("env_size", BigInt, Hidden),
        col!("cwd", Text),
        col!("auid", BigInt),
        col!("uid", BigInt),
        col!("euid", BigInt),
        col!("gid", BigInt),
        col!("egid", BigInt),
        col!("owner_uid", BigInt),
        col!("owner_gid", BigInt),
        col!("atime", BigInt),
        col!("mtime", BigInt),
        col!("ctime", BigInt),
        col!("btime", BigInt),
        col!("overflows", Text, Hidden),
        col!("parent", BigInt),
        col!("time", BigInt, Additional),
        col!("uptime", BigInt),
        col!("eid", Text, Hidden),
        col!("fsuid", BigInt),
        col!("suid", BigInt),
        col!("fsgid", BigInt),
        col!("sgid", BigInt),
        col!("syscall", Text),
        // sweep's own: the reverse-shell signature, read at exec.
        col!("fd0_remote", Text),
        col!("fd1_remote", Text),
        col!("fd2_remote", Text),
    ],
};
