//! The operating system as SQL tables, one file per table, with osquery's
//! names, columns and constraint rules.
//!
//! A table implements [`Table`]: it declares its columns and generates rows for
//! one scan, told by a [`ScanContext`] which columns the query uses and which
//! constraints were pushed down. [`vtab`] turns every table into an eponymous
//! SQLite virtual table; that file is the only one with `unsafe`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::AgentError;

mod context;
#[allow(unsafe_code)]
pub mod vtab;

pub(crate) mod net;
pub mod schedule_stats;
pub(crate) mod sysfs;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod user_file;
pub(crate) mod util;

mod acpi_tables;
mod apt_sources;
mod arp_cache;
mod authorized_keys;
mod block_devices;
mod chrome_extensions;
mod cpu_time;
mod cpuid;
mod crontab;
mod deb_packages;
mod disk_encryption;
mod docker_containers;
mod etc_hosts;
mod etc_services;
mod file;
mod file_events;
mod firefox_addons;
mod groups;
mod hardware_events;
mod hash;
mod interface_addresses;
mod interface_details;
mod iptables;
mod kernel_info;
mod kernel_modules;
mod last;
mod listening_ports;
mod load_average;
mod logged_in_users;
mod memory_info;
mod mounts;
mod opera_extensions;
mod os_version;
mod osquery_events;
mod osquery_flags;
mod osquery_info;
mod osquery_packs;
mod osquery_schedule;
mod pci_devices;
mod portage_packages;
mod process_envs;
mod process_events;
mod process_memory_map;
mod process_open_files;
mod process_open_sockets;
pub(crate) mod processes;
mod python_packages;
mod routes;
mod rpm_packages;
mod shell_history;
mod smbios_tables;
mod socket_events;
mod sudoers;
mod suid_bin;
mod system_controls;
mod system_info;
mod systemd_units;
mod time;
mod uptime;
mod usb_devices;
mod users;

pub use context::{resident_bytes, Budget, Constraint, IntoValue, Op, Row, ScanContext};

/// An owned copy of a value SQLite lent us.
pub fn owned(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::Value {
    use rusqlite::types::{Value, ValueRef};
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}
pub use sweep_proto::schema::{Column, ColumnOption, ColumnType, TableSchema};

/// One osquery-compatible table.
pub trait Table: Send + Sync + 'static {
    /// Name and columns: the shared definition in `sweep_proto::schema`.
    fn schema(&self) -> &'static TableSchema;
    fn name(&self) -> &'static str {
        self.schema().name
    }
    fn columns(&self) -> &'static [Column] {
        self.schema().columns
    }
    /// Appends this scan's rows to `out`. A vanished process or an unreadable
    /// value is not an error: skip the row, or leave the value NULL.
    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError>;
}

/// Where tables read host files from. Tests point these at files they write;
/// in production they are the usual paths.
#[derive(Debug, Clone)]
pub struct HostPaths {
    pub etc_hosts: PathBuf,
    pub etc_services: PathBuf,
    pub etc_passwd: PathBuf,
    pub etc_group: PathBuf,
    pub utmp: PathBuf,
    pub wtmp: PathBuf,
    pub dpkg_status: PathBuf,
    pub rpm_db: PathBuf,
    pub docker_socket: PathBuf,
    pub sudoers: PathBuf,
    pub crontab: PathBuf,
    pub cron_dir: PathBuf,
    pub cron_spool: PathBuf,
    pub os_release: PathBuf,
    pub iptables_save: PathBuf,
    pub machine_id: PathBuf,
    /// System-wide Python site directories `python_packages` scans; `%`
    /// stands for any characters within one path component.
    pub python_sites: Vec<String>,
    /// Portage's installed-package database and its world file.
    pub portage_db: PathBuf,
    pub portage_world: PathBuf,
    /// sysfs: block, PCI and USB devices, firmware tables.
    pub sysfs: PathBuf,
    /// Device nodes, whose superblocks `block_devices` reads.
    pub dev: PathBuf,
    /// udev's device database.
    pub udev_data: PathBuf,
    /// pci.ids and usb.ids: the first readable of each list is used.
    pub pci_ids: Vec<PathBuf>,
    pub usb_ids: Vec<PathBuf>,
    /// The sysctl tree, and the root under which sysctl's configuration
    /// files (etc/sysctl.conf, etc/sysctl.d, …) are read.
    pub proc_sys: PathBuf,
    pub sysctl_root: PathBuf,
    /// APT's configuration directory and the lists `apt update` downloads.
    pub etc_apt: PathBuf,
    pub apt_lists: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        Self {
            etc_hosts: "/etc/hosts".into(),
            etc_services: "/etc/services".into(),
            etc_passwd: "/etc/passwd".into(),
            etc_group: "/etc/group".into(),
            utmp: "/var/run/utmp".into(),
            wtmp: "/var/log/wtmp".into(),
            dpkg_status: "/var/lib/dpkg/status".into(),
            rpm_db: "/var/lib/rpm".into(),
            docker_socket: "/var/run/docker.sock".into(),
            sudoers: "/etc/sudoers".into(),
            crontab: "/etc/crontab".into(),
            cron_dir: "/etc/cron.d".into(),
            cron_spool: "/var/spool/cron".into(),
            os_release: "/etc/os-release".into(),
            iptables_save: "/usr/sbin/iptables-save".into(),
            machine_id: "/etc/machine-id".into(),
            python_sites: python_packages::SYSTEM_SITES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            portage_db: "/var/db/pkg".into(),
            portage_world: "/var/lib/portage/world".into(),
            sysfs: "/sys".into(),
            dev: "/dev".into(),
            udev_data: "/run/udev/data".into(),
            pci_ids: [
                "/usr/share/misc/pci.ids",
                "/usr/share/hwdata/pci.ids",
                "/usr/share/pci.ids",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
            usb_ids: [
                "/usr/share/misc/usb.ids",
                "/usr/share/hwdata/usb.ids",
                "/usr/share/usb.ids",
                "/var/lib/usbutils/usb.ids",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
            proc_sys: "/proc/sys".into(),
            sysctl_root: "/".into(),
            etc_apt: "/etc/apt".into(),
            apt_lists: "/var/lib/apt/lists".into(),
        }
    }
}

/// Facts about the running agent that `osquery_info` reports.
#[derive(Debug, Clone)]
pub struct AgentFacts {
    pub instance_id: String,
    pub host_id: String,
    pub start_time: u64,
    pub config_hash: String,
}

impl Default for AgentFacts {
    fn default() -> Self {
        Self {
            instance_id: String::new(),
            host_id: String::new(),
            start_time: sweep_proto::time::unix_now(),
            config_hash: String::new(),
        }
    }
}

/// What every table may consult besides the OS: paths and agent facts.
#[derive(Debug, Clone, Default)]
pub struct TableEnv {
    pub paths: HostPaths,
    pub facts: AgentFacts,
    /// The scheduler's queries, packs and run statistics
    /// (`osquery_schedule`, `osquery_packs`).
    pub schedule: Arc<schedule_stats::ScheduleStats>,
    /// The agent's configuration in force (`osquery_flags`).
    pub config: Arc<crate::config::Config>,
    /// The event buffers and sources (`process_events`, `socket_events`,
    /// `file_events`, `osquery_events`); None outside the agent daemon.
    pub events: Option<Arc<crate::events::Events>>,
}

/// An event table's scan: the hub's rows, through the scheduled run's
/// window when there is one.
fn events_scan(
    ctx: &ScanContext<'_>,
    table: &'static str,
    out: &mut Vec<Row>,
) -> Result<(), AgentError> {
    let Some(events) = &ctx.env().events else {
        return Err(AgentError::Table {
            table,
            reason: "no events: event sources run only in the agent daemon (`sweep-agent run`); \
                     ask it with a hunt"
                .into(),
        });
    };
    events.scan(table, ctx.budget.window.as_deref(), out)
}

/// Every table the agent serves.
pub struct Registry {
    tables: Vec<Arc<dyn Table>>,
    env: Arc<TableEnv>,
}

impl Registry {
    pub fn new(env: TableEnv) -> Self {
        let env = Arc::new(env);
        let mut tables: Vec<Arc<dyn Table>> = vec![
            Arc::new(acpi_tables::AcpiTables),
            Arc::new(apt_sources::AptSources),
            Arc::new(arp_cache::ArpCache),
            Arc::new(authorized_keys::AuthorizedKeys),
            Arc::new(block_devices::BlockDevices),
            Arc::new(chrome_extensions::ChromeExtensions),
            Arc::new(cpu_time::CpuTime),
            Arc::new(cpuid::Cpuid),
            Arc::new(crontab::Crontab),
            Arc::new(deb_packages::DebPackages),
            Arc::new(disk_encryption::DiskEncryption),
            Arc::new(docker_containers::DockerContainers),
            Arc::new(etc_hosts::EtcHosts),
            Arc::new(etc_services::EtcServices),
            Arc::new(file::File),
            Arc::new(file_events::FileEvents),
            Arc::new(firefox_addons::FirefoxAddons),
            Arc::new(groups::Groups),
            Arc::new(hardware_events::HardwareEvents),
            Arc::new(hash::Hash),
            Arc::new(interface_addresses::InterfaceAddresses),
            Arc::new(interface_details::InterfaceDetails),
            Arc::new(iptables::Iptables),
            Arc::new(kernel_info::KernelInfo),
            Arc::new(kernel_modules::KernelModules),
            Arc::new(last::Last),
            Arc::new(listening_ports::ListeningPorts),
            Arc::new(load_average::LoadAverage),
            Arc::new(logged_in_users::LoggedInUsers),
            Arc::new(memory_info::MemoryInfo),
            Arc::new(mounts::Mounts),
            Arc::new(opera_extensions::OperaExtensions),
            Arc::new(os_version::OsVersion),
            Arc::new(osquery_events::OsqueryEvents),
            Arc::new(osquery_flags::OsqueryFlags),
            Arc::new(osquery_info::OsqueryInfo),
            Arc::new(osquery_packs::OsqueryPacks),
            Arc::new(osquery_schedule::OsquerySchedule),
            Arc::new(pci_devices::PciDevices),
            Arc::new(portage_packages::PortagePackages),
            Arc::new(process_envs::ProcessEnvs),
            Arc::new(process_memory_map::ProcessMemoryMap),
            Arc::new(process_open_files::ProcessOpenFiles),
            Arc::new(process_open_sockets::ProcessOpenSockets),
            Arc::new(processes::Processes),
            Arc::new(process_events::ProcessEvents),
            Arc::new(python_packages::PythonPackages),
            Arc::new(routes::Routes),
            Arc::new(rpm_packages::RpmPackages),
            Arc::new(shell_history::ShellHistory),
            Arc::new(smbios_tables::SmbiosTables),
            Arc::new(socket_events::SocketEvents),
            Arc::new(sudoers::Sudoers),
            Arc::new(suid_bin::SuidBin),
            Arc::new(system_controls::SystemControls),
            Arc::new(system_info::SystemInfo),
            Arc::new(systemd_units::SystemdUnits),
            Arc::new(time::Time),
            Arc::new(uptime::Uptime),
            Arc::new(usb_devices::UsbDevices),
            Arc::new(users::Users),
        ];
        tables.sort_by_key(|t| t.name());
        Self { tables, env }
    }

    pub fn tables(&self) -> &[Arc<dyn Table>] {
        &self.tables
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Table>> {
        self.tables.iter().find(|t| t.name() == name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn env(&self) -> &Arc<TableEnv> {
        &self.env
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new(TableEnv::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_serves_exactly_the_shared_table_list() {
        // The controller guards hunts with sweep_proto's list; the agent with
        // its registry. They must agree, or one side refuses what the other runs.
        let registry = Registry::default();
        let names: Vec<&str> = registry.tables().iter().map(|t| t.name()).collect();
        let shared: Vec<&str> = sweep_proto::schema::names().collect();
        assert_eq!(names, shared);
    }
}
