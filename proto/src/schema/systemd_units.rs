//! `systemd_units`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "systemd_units",
    description: "Track systemd units.",
    columns: &[
        col!("id", Text),
        col!("description", Text),
        col!("load_state", Text),
        col!("active_state", Text),
        col!("sub_state", Text),
        col!("unit_file_state", Text),
        col!("following", Text),
        col!("object_path", Text),
        col!("job_id", BigInt),
        col!("job_type", Text),
        col!("job_path", Text),
        col!("fragment_path", Text),
        col!("user", Text),
        col!("source_path", Text),
    ],
};
