//! The tables every sweep agent serves: names, columns, types and constraint
//! options, as in osquery's table specs (`specs/*.table`). One file per table.
//! This is the one definition both sides use: the agent declares its virtual
//! tables from it, and the guard (on the controller and the agent) prepares
//! queries against it, so neither side refuses what the other would run.

pub mod acpi_tables;
pub mod apt_sources;
pub mod arp_cache;
pub mod authorized_keys;
pub mod block_devices;
pub mod chrome_extensions;
pub mod cpu_time;
pub mod cpuid;
pub mod crontab;
pub mod deb_packages;
pub mod disk_encryption;
pub mod docker_containers;
pub mod etc_hosts;
pub mod etc_services;
pub mod file;
pub mod file_events;
pub mod firefox_addons;
pub mod groups;
pub mod hardware_events;
pub mod hash;
pub mod interface_addresses;
pub mod interface_details;
pub mod iptables;
pub mod kernel_info;
pub mod kernel_modules;
pub mod last;
pub mod listening_ports;
pub mod load_average;
pub mod logged_in_users;
pub mod memory_info;
pub mod mounts;
pub mod opera_extensions;
pub mod os_version;
pub mod osquery_events;
pub mod osquery_flags;
pub mod osquery_info;
pub mod osquery_packs;
pub mod osquery_schedule;
pub mod pci_devices;
pub mod portage_packages;
pub mod process_envs;
pub mod process_events;
pub mod process_memory_map;
pub mod process_open_files;
pub mod process_open_sockets;
pub mod processes;
pub mod python_packages;
pub mod routes;
pub mod rpm_packages;
pub mod shell_history;
pub mod smbios_tables;
pub mod socket_events;
pub mod sudoers;
pub mod suid_bin;
pub mod system_controls;
pub mod system_info;
pub mod systemd_units;
pub mod time;
pub mod uptime;
pub mod usb_devices;
pub mod users;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// One table: its name, osquery's description of it, and its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSchema {
    pub name: &'static str,
    pub description: &'static str,
    pub columns: &'static [Column],
}

impl TableSchema {
    /// The `CREATE TABLE` text for this table, as `.schema` shows it and as
    /// the guard declares it.
    pub fn create_sql(&self) -> String {
        create_sql(&quote(self.name), self.columns)
    }
}

/// The `CREATE TABLE <name>(…)` text declaring `columns`; SQLite needs it
/// (with any name) to declare a virtual table.
pub fn create_sql(name: &str, columns: &[Column]) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| {
            let hidden = if c.option == ColumnOption::Hidden {
                " HIDDEN"
            } else {
                ""
            };
            format!("{} {}{}", quote(c.name), c.ty.sql(), hidden)
        })
        .collect();
    format!("CREATE TABLE {name}({})", cols.join(", "))
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Shorthand for column lists: `col!("pid", BigInt, Index)`.
#[macro_export]
macro_rules! col {
    ($name:literal, $ty:ident) => {
        $crate::schema::Column {
            name: $name,
            ty: $crate::schema::ColumnType::$ty,
            option: $crate::schema::ColumnOption::Plain,
        }
    };
    ($name:literal, $ty:ident, $opt:ident) => {
        $crate::schema::Column {
            name: $name,
            ty: $crate::schema::ColumnType::$ty,
            option: $crate::schema::ColumnOption::$opt,
        }
    };
}
pub use crate::col;

/// Every table, sorted by name.
pub const TABLES: &[TableSchema] = &[
    acpi_tables::TABLE,
    apt_sources::TABLE,
    arp_cache::TABLE,
    authorized_keys::TABLE,
    block_devices::TABLE,
    chrome_extensions::TABLE,
    cpu_time::TABLE,
    cpuid::TABLE,
    crontab::TABLE,
    deb_packages::TABLE,
    disk_encryption::TABLE,
    docker_containers::TABLE,
    etc_hosts::TABLE,
    etc_services::TABLE,
    file::TABLE,
    file_events::TABLE,
    firefox_addons::TABLE,
    groups::TABLE,
    hardware_events::TABLE,
    hash::TABLE,
    interface_addresses::TABLE,
    interface_details::TABLE,
    iptables::TABLE,
    kernel_info::TABLE,
    kernel_modules::TABLE,
    last::TABLE,
    listening_ports::TABLE,
    load_average::TABLE,
    logged_in_users::TABLE,
    memory_info::TABLE,
    mounts::TABLE,
    opera_extensions::TABLE,
    os_version::TABLE,
    osquery_events::TABLE,
    osquery_flags::TABLE,
    osquery_info::TABLE,
    osquery_packs::TABLE,
    osquery_schedule::TABLE,
    pci_devices::TABLE,
    portage_packages::TABLE,
    process_envs::TABLE,
    process_events::TABLE,
    process_memory_map::TABLE,
    process_open_files::TABLE,
    process_open_sockets::TABLE,
    processes::TABLE,
    python_packages::TABLE,
    routes::TABLE,
    rpm_packages::TABLE,
    shell_history::TABLE,
    smbios_tables::TABLE,
    socket_events::TABLE,
    sudoers::TABLE,
    suid_bin::TABLE,
    system_controls::TABLE,
    system_info::TABLE,
    systemd_units::TABLE,
    time::TABLE,
    uptime::TABLE,
    usb_devices::TABLE,
    users::TABLE,
];

/// The table called `name`.
pub fn get(name: &str) -> Option<&'static TableSchema> {
    TABLES
        .binary_search_by(|t| t.name.cmp(name))
        .ok()
        .map(|i| &TABLES[i])
}

/// Whether an agent serves a table called `name`.
pub fn is_known(name: &str) -> bool {
    get(name).is_some()
}

/// The names of every table, sorted.
pub fn names() -> impl Iterator<Item = &'static str> {
    TABLES.iter().map(|t| t.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_for_binary_search() {
        assert!(TABLES.windows(2).all(|w| w[0].name < w[1].name));
    }

    #[test]
    fn every_table_declares_a_valid_schema_with_unique_columns() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for t in TABLES {
            conn.execute_batch(&t.create_sql())
                .unwrap_or_else(|e| panic!("{}: {e}", t.name));
            let mut seen = std::collections::BTreeSet::new();
            for c in t.columns {
                assert!(seen.insert(c.name), "{}: {} twice", t.name, c.name);
            }
        }
    }
}
