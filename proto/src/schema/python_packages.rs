//! `python_packages`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "python_packages",
    description: "Python packages installed in a system. NOTE: when querying on windows, even without a users cross join, all user installed python packages will be returned. This special behavior is to not break original functionality.",
    columns: &[
        col!("name", Text),
        col!("uid", BigInt, Index),
        col!("version", Text),
        col!("summary", Text),
        col!("author", Text),
        col!("license", Text),
        col!("path", Text),
        col!("directory", Text, Index),
        col!("pid_with_namespace", Integer, Hidden),
    ],
};
