//! `apt_sources`: osquery's columns for this table (with its Linux one).

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "apt_sources",
    description: "Current list of APT repositories or software channels.",
    columns: &[
        col!("name", Text),
        col!("source", Text),
        col!("base_uri", Text),
        col!("release", Text),
        col!("version", Text),
        col!("maintainer", Text),
        col!("components", Text),
        col!("architectures", Text),
        col!("pid_with_namespace", Integer, Hidden),
    ],
};
