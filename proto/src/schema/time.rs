//! `time`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "time",
    description: "Track current date and time in UTC.",
    columns: &[
        col!("weekday", Text),
        col!("year", Integer),
        col!("month", Integer),
        col!("day", Integer),
        col!("hour", Integer),
        col!("minutes", Integer),
        col!("seconds", Integer),
        col!("timezone", Text),
        col!("local_timezone", Text),
        col!("unix_time", Integer),
        col!("timestamp", Text),
        col!("datetime", Text),
        col!("iso_8601", Text),
    ],
};
