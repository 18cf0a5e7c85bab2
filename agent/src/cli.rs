//! The command line of `sweep-agent`. It lives in the library, not in
//! `main.rs`, so the man page and shell-completion generator
//! (`examples/sweep-agent-docs.rs`, run by `ops/package`) builds the same
//! `clap::Command` the binary parses.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::output::Mode;

#[derive(Parser)]
#[command(
    name = "sweep-agent",
    version,
    about = "The operating system as SQL, answering sweep hunts"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run one query on this host and print the rows (no etcd, no Kafka).
    Query {
        /// The SQL text.
        sql: String,
        /// Print a JSON array of row objects.
        #[arg(long)]
        json: bool,
        /// Output mode: table, line, json or csv.
        #[arg(long, default_value = "table", conflicts_with = "json")]
        mode: Mode,
    },
    /// An interactive SQL console over this host's tables (reads a pipe too).
    Shell,
    /// Run the agent daemon.
    Run {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run a fleet of virtual agents in this process (a simulator for scale
    /// tests; query answers are memoised across agents).
    Fleet {
        /// The TOML configuration every virtual agent starts from (its
        /// host_id is replaced, its state goes under state_dir/fleet/).
        #[arg(long, short)]
        config: PathBuf,
        /// How many virtual agents.
        #[arg(long, default_value_t = 100)]
        agents: usize,
        /// Host id prefix (followed by a five-digit number).
        #[arg(long, default_value = "sim-")]
        prefix: String,
        /// Agents started per second.
        #[arg(long, default_value_t = 500)]
        ramp: u32,
        /// Agents sharing one etcd connection.
        #[arg(long, default_value_t = 100)]
        per_connection: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The default config the .deb installs as /etc/sweep/agent.toml must be
    /// one `sweep-agent run --config` accepts (every section denies unknown
    /// fields).
    #[test]
    fn packaged_config_parses() {
        let text = include_str!("../../ops/packaging/agent.toml");
        let config = crate::Config::parse(text).expect("ops/packaging/agent.toml");
        assert_eq!(
            config.state_dir,
            PathBuf::from("/var/lib/sweep-agent"),
            "the unit's StateDirectory"
        );
    }
}
