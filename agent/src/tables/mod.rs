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
mod schema;
#[allow(unsafe_code)]
pub mod vtab;

mod util;

// TODO(table) mod arp_cache;
// TODO(table) mod authorized_keys;
// TODO(table) mod cpu_time;
// TODO(table) mod crontab;
// TODO(table) mod deb_packages;
// TODO(table) mod docker_containers;
// TODO(table) mod etc_hosts;
// TODO(table) mod etc_services;
// TODO(table) mod file;
// TODO(table) mod groups;
// TODO(table) mod hash;
// TODO(table) mod interface_addresses;
// TODO(table) mod interface_details;
// TODO(table) mod iptables;
// TODO(table) mod kernel_info;
// TODO(table) mod kernel_modules;
// TODO(table) mod last;
// TODO(table) mod listening_ports;
// TODO(table) mod load_average;
// TODO(table) mod logged_in_users;
// TODO(table) mod memory_info;
// TODO(table) mod mounts;
// TODO(table) mod os_version;
// TODO(table) mod osquery_info;
// TODO(table) mod process_envs;
// TODO(table) mod process_memory_map;
// TODO(table) mod process_open_files;
// TODO(table) mod process_open_sockets;
mod processes;
// TODO(table) mod routes;
// TODO(table) mod rpm_packages;
// TODO(table) mod shell_history;
// TODO(table) mod sudoers;
// TODO(table) mod suid_bin;
// TODO(table) mod system_info;
// TODO(table) mod systemd_units;
// TODO(table) mod uptime;
// TODO(table) mod users;

pub use context::{Budget, Constraint, IntoValue, Op, Row, ScanContext};

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
pub use schema::{create_sql, Column, ColumnOption, ColumnType};

/// One osquery-compatible table.
pub trait Table: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn columns(&self) -> &'static [Column];
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
    pub os_release: PathBuf,
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
            os_release: "/etc/os-release".into(),
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
            // TODO(table) Arc::new(arp_cache::ArpCache),
            // TODO(table) Arc::new(authorized_keys::AuthorizedKeys),
            // TODO(table) Arc::new(cpu_time::CpuTime),
            // TODO(table) Arc::new(crontab::Crontab),
            // TODO(table) Arc::new(deb_packages::DebPackages),
            // TODO(table) Arc::new(docker_containers::DockerContainers),
            // TODO(table) Arc::new(etc_hosts::EtcHosts),
            // TODO(table) Arc::new(etc_services::EtcServices),
            // TODO(table) Arc::new(file::File),
            // TODO(table) Arc::new(groups::Groups),
            // TODO(table) Arc::new(hash::Hash),
            // TODO(table) Arc::new(interface_addresses::InterfaceAddresses),
            // TODO(table) Arc::new(interface_details::InterfaceDetails),
            // TODO(table) Arc::new(iptables::Iptables),
            // TODO(table) Arc::new(kernel_info::KernelInfo),
            // TODO(table) Arc::new(kernel_modules::KernelModules),
            // TODO(table) Arc::new(last::Last),
            // TODO(table) Arc::new(listening_ports::ListeningPorts),
            // TODO(table) Arc::new(load_average::LoadAverage),
            // TODO(table) Arc::new(logged_in_users::LoggedInUsers),
            // TODO(table) Arc::new(memory_info::MemoryInfo),
            // TODO(table) Arc::new(mounts::Mounts),
            // TODO(table) Arc::new(os_version::OsVersion),
            // TODO(table) Arc::new(osquery_info::OsqueryInfo),
            // TODO(table) Arc::new(process_envs::ProcessEnvs),
            // TODO(table) Arc::new(process_memory_map::ProcessMemoryMap),
            // TODO(table) Arc::new(process_open_files::ProcessOpenFiles),
            // TODO(table) Arc::new(process_open_sockets::ProcessOpenSockets),
            Arc::new(processes::Processes),
            // TODO(table) Arc::new(routes::Routes),
            // TODO(table) Arc::new(rpm_packages::RpmPackages),
            // TODO(table) Arc::new(shell_history::ShellHistory),
            // TODO(table) Arc::new(sudoers::Sudoers),
            // TODO(table) Arc::new(suid_bin::SuidBin),
            // TODO(table) Arc::new(system_info::SystemInfo),
            // TODO(table) Arc::new(systemd_units::SystemdUnits),
            // TODO(table) Arc::new(uptime::Uptime),
            // TODO(table) Arc::new(users::Users),
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
