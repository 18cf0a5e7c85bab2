//! `file`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "file",
    description: "Interactive filesystem attributes and metadata.",
    columns: &[
        col!("path", Text, Required),
        col!("directory", Text, Required),
        col!("filename", Text),
        col!("inode", BigInt),
        col!("uid", BigInt),
        col!("gid", BigInt),
        col!("mode", Text),
        col!("device", BigInt),
        col!("size", BigInt),
        col!("block_size", Integer),
        col!("atime", BigInt),
        col!("mtime", BigInt),
        col!("ctime", BigInt),
        col!("btime", BigInt),
        col!("hard_links", Integer),
        col!("symlink", Integer),
        col!("type", Text),
        col!("symlink_target_path", Text),
        col!("pid_with_namespace", Integer, Hidden),
        col!("mount_namespace_id", Text, Hidden),
    ],
};
