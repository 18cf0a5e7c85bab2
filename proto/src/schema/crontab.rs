//! `crontab`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "crontab",
    description: "Line parsed values from system and user cron/tab.",
    columns: &[
        col!("event", Text),
        col!("minute", Text),
        col!("hour", Text),
        col!("day_of_month", Text),
        col!("month", Text),
        col!("day_of_week", Text),
        col!("command", Text),
        col!("path", Text),
        col!("pid_with_namespace", Integer, Hidden),
    ],
};
