//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "sweep", version, about = "Ask every host a question in SQL")]
pub struct Cli {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where etcd and Kafka are. Each flag also reads an environment variable; a
/// config file gives the rest; defaults reach the quickstart cluster.
#[derive(Args, Debug, Default, Clone)]
pub struct ConnectionArgs {
    /// TOML file with [etcd] and [kafka] sections.
    #[arg(long, global = true, env = "SWEEP_CONFIG")]
    pub config: Option<PathBuf>,
    /// etcd endpoints, comma-separated.
    #[arg(long, global = true, env = "SWEEP_ETCD", value_delimiter = ',')]
    pub etcd: Option<Vec<String>>,
    /// etcd key prefix.
    #[arg(long, global = true, env = "SWEEP_PREFIX")]
    pub prefix: Option<String>,
    /// Kafka bootstrap servers.
    #[arg(long, global = true, env = "SWEEP_KAFKA")]
    pub kafka: Option<String>,
    /// Extra librdkafka property, key=value (repeatable).
    #[arg(long = "kafka-property", global = true, value_name = "KEY=VALUE")]
    pub kafka_properties: Vec<String>,
    /// The ed25519 secret key file hunts are signed with (`sweep keygen`).
    #[arg(long, global = true, env = "SWEEP_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Broadcast a SQL hunt and collect every agent's answer.
    Hunt(HuntArgs),
    /// List live agents.
    Agents(AgentsArgs),
    /// Show what a hunt has got so far, and who has not answered.
    Results(ResultsArgs),
    /// Read rule matches.
    Matches(MatchesArgs),
    /// Create an ed25519 key pair for signing hunts.
    Keygen(KeygenArgs),
}

#[derive(Args, Debug)]
pub struct HuntArgs {
    /// The SQL to run on every targeted host.
    pub sql: String,
    /// How long to wait for answers.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// How long the hunt stays live for agents that come online later.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub expiry: Duration,
    /// Only these host ids (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Only hosts with these labels, e.g. role=web,dc=sh1.
    #[arg(long)]
    pub labels: Option<String>,
    /// Print rows as NDJSON, one object per row.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct AgentsArgs {
    /// Print NDJSON, one object per agent.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct MatchesArgs {
    /// Keep reading new matches until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// Print NDJSON, one match per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ResultsArgs {
    /// The hunt id `sweep hunt` printed.
    pub hunt_id: String,
    /// Print rows as NDJSON, one object per row.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Directory for sweep.key (secret, mode 0600) and sweep.pub.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Replace an existing key.
    #[arg(long)]
    pub force: bool,
}
