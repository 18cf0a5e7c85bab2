//! `osquery_packs`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "osquery_packs",
    description: "Information about the current query packs that are loaded in osquery.",
    columns: &[
        col!("name", Text),
        col!("platform", Text),
        col!("version", Text),
        col!("shard", Integer),
        col!("discovery_cache_hits", Integer),
        col!("discovery_executions", Integer),
        col!("active", Integer),
    ],
};
