//! Column declarations, in osquery's types and options.

/// osquery's column types. SQLite stores them as INTEGER, REAL or TEXT; the
/// declared type is kept so `.schema` reads like osquery's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Integer,
    BigInt,
    UnsignedBigInt,
    Double,
}

impl ColumnType {
    pub fn sql(self) -> &'static str {
        match self {
            Self::Text => "TEXT",
            Self::Integer => "INTEGER",
            Self::BigInt => "BIGINT",
            Self::UnsignedBigInt => "UNSIGNED BIGINT",
            Self::Double => "DOUBLE",
        }
    }
}

/// A column option, as in osquery's table specs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnOption {
    /// Nothing special.
    Plain,
    /// An index: `=` and `IN` on it are pushed down to the table.
    Index,
    /// Required: the query must constrain it (or a sibling required column).
    Required,
    /// Pushed down like an index, but not a key.
    Additional,
    /// Hidden from `SELECT *`, usable in WHERE.
    Hidden,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    pub option: ColumnOption,
}

impl Column {
    /// Whether a constraint on this column reaches the table's generator.
    pub fn is_pushed_down(&self) -> bool {
        !matches!(self.option, ColumnOption::Plain)
    }
}

/// Shorthand for column lists: `col!("pid", BigInt, Index)`.
#[macro_export]
macro_rules! col {
    ($name:literal, $ty:ident) => {
        $crate::tables::Column {
            name: $name,
            ty: $crate::tables::ColumnType::$ty,
            option: $crate::tables::ColumnOption::Plain,
        }
    };
    ($name:literal, $ty:ident, $opt:ident) => {
        $crate::tables::Column {
            name: $name,
            ty: $crate::tables::ColumnType::$ty,
            option: $crate::tables::ColumnOption::$opt,
        }
    };
}

/// The `CREATE TABLE` text SQLite needs to declare a virtual table.
pub fn create_sql(columns: &[Column]) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| {
            let hidden = if c.option == ColumnOption::Hidden {
                " HIDDEN"
            } else {
                ""
            };
            format!("\"{}\" {}{}", c.name, c.ty.sql(), hidden)
        })
        .collect();
    format!("CREATE TABLE x({})", cols.join(", "))
}
