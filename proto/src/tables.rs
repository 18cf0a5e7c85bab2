//! The tables every sweep agent serves, by name. The controller checks hunts
//! against this list before they leave the operator's terminal; the agent
//! checks its own registry, which a test keeps equal to this list.

/// osquery's Linux tables that sweep implements, sorted.
pub const TABLES: &[&str] = &[
    "arp_cache",
    "authorized_keys",
    "cpu_time",
    "crontab",
    "deb_packages",
    "docker_containers",
    "etc_hosts",
    "etc_services",
    "file",
    "groups",
    "hash",
    "interface_addresses",
    "interface_details",
    "iptables",
    "kernel_info",
    "kernel_modules",
    "last",
    "listening_ports",
    "load_average",
    "logged_in_users",
    "memory_info",
    "mounts",
    "os_version",
    "osquery_info",
    "process_envs",
    "process_memory_map",
    "process_open_files",
    "process_open_sockets",
    "processes",
    "routes",
    "rpm_packages",
    "shell_history",
    "sudoers",
    "suid_bin",
    "system_info",
    "systemd_units",
    "time",
    "uptime",
    "users",
];

pub fn is_known(name: &str) -> bool {
    TABLES.binary_search(&name).is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn list_is_sorted_for_binary_search() {
        assert!(super::TABLES.windows(2).all(|w| w[0] < w[1]));
    }
}
