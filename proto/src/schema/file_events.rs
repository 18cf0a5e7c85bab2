//! `file_events`: osquery's columns for this evented table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "file_events",
    description: "Track time/action changes to files specified in configuration data.",
    columns: &[
        col!("target_path", Text),
        col!("category", Text),
        col!("action", Text),
        col!("transaction_id", BigInt),
        col!("inode", BigInt),
        col!("uid", BigInt),
        col!("gid", BigInt),
        col!("mode", Text),
        col!("size", BigInt),
        col!("atime", BigInt),
        col!("mtime", BigInt),
        col!("ctime", BigInt),
        col!("md5", Text),
        col!("sha1", Text),
        col!("sha256", Text),
        col!("hashed", Integer),
        col!("time", BigInt, Additional),
        col!("eid", Text, Hidden),
        // sweep's own: the process that wrote (UPDATED), where fanotify
        // names it; NULL from inotify (the other actions, or no fanotify).
        col!("pid", BigInt),
    ],
};
