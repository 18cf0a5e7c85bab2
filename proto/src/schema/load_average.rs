//! `load_average`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "load_average",
    description: "Displays information about the system wide load averages.",
    columns: &[col!("period", Text), col!("average", Text)],
};
