//! `firefox_addons`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "firefox_addons",
    description: "Firefox browser extensions, webapps, and addons.",
    columns: &[
        col!("uid", BigInt, Additional),
        col!("name", Text),
        col!("identifier", Text, Index),
        col!("creator", Text),
        col!("type", Text),
        col!("version", Text),
        col!("description", Text),
        col!("source_url", Text),
        col!("visible", Integer),
        col!("active", Integer),
        col!("disabled", Integer),
        col!("autoupdate", Integer),
        col!("location", Text),
        col!("path", Text),
    ],
};
