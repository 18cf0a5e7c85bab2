//! `docker_containers`: osquery's columns for this table.

use super::{col, TableSchema};

pub const TABLE: TableSchema = TableSchema {
    name: "docker_containers",
    description: "Docker containers information.",
    columns: &[
        col!("id", Text, Index),
        col!("name", Text, Index),
        col!("image", Text),
        col!("image_id", Text),
        col!("command", Text),
        col!("created", BigInt),
        col!("state", Text),
        col!("status", Text),
        col!("pid", BigInt),
        col!("path", Text),
        col!("config_entrypoint", Text),
        col!("started_at", Text),
        col!("finished_at", Text),
        col!("privileged", Integer),
        col!("security_options", Text),
        col!("env_variables", Text),
        col!("readonly_rootfs", Integer),
        col!("cgroup_namespace", Text),
        col!("ipc_namespace", Text),
        col!("mnt_namespace", Text),
        col!("net_namespace", Text),
        col!("pid_namespace", Text),
        col!("user_namespace", Text),
        col!("uts_namespace", Text),
    ],
};
