//! `opera_extensions`: the columns of osquery's last `opera_extensions` spec
//! (`specs/posix/opera_extensions.table`, removed in osquery 4.8 when
//! `chrome_extensions` took Opera in as `browser_type = 'opera'`).

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "opera_extensions",
    description: "Opera browser extensions.",
    columns: &[
        col!("uid", BigInt, Index),
        col!("name", Text),
        col!("identifier", Text),
        col!("version", Text),
        col!("description", Text),
        col!("locale", Text),
        col!("update_url", Text),
        col!("author", Text),
        col!("persistent", Integer),
        col!("path", Text),
    ],
};
