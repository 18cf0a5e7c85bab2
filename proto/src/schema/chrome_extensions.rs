//! `chrome_extensions`: osquery's columns for this table. `locale` is the
//! deprecated alias of `default_locale`, declared last and hidden as osquery
//! declares column aliases.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "chrome_extensions",
    description: "Chrome-based browser extensions.",
    columns: &[
        col!("browser_type", Text),
        col!("uid", BigInt, Index),
        col!("name", Text),
        col!("profile", Text),
        col!("profile_path", Text),
        col!("referenced_identifier", Text),
        col!("identifier", Text),
        col!("version", Text),
        col!("description", Text),
        col!("default_locale", Text),
        col!("current_locale", Text),
        col!("update_url", Text),
        col!("author", Text),
        col!("persistent", Integer),
        col!("path", Text),
        col!("permissions", Text),
        col!("permissions_json", Text, Hidden),
        col!("optional_permissions", Text),
        col!("optional_permissions_json", Text, Hidden),
        col!("manifest_hash", Text),
        col!("referenced", BigInt),
        col!("from_webstore", Text),
        col!("state", Text),
        col!("install_time", Text),
        col!("install_timestamp", BigInt),
        col!("manifest_json", Text, Hidden),
        col!("key", Text, Hidden),
        col!("locale", Text, Hidden),
    ],
};
