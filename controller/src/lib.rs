//! `sweep`, the operator's CLI.
//!
//! - [`cli`]: the command line (clap), shared connection flags.
//! - [`config`]: where connection settings come from: flags, environment,
//!   a TOML file, defaults that reach the quickstart cluster.
//! - [`commands`]: one file per subcommand (`hunt`, `results`, `agents`,
//!   `matches`, `keygen`, `schedule`, `pack`, `tail`).
//! - [`fleet`]: reading live agents from etcd.
//! - [`identities`]: agents' identity keys, pinned on first sight or by
//!   `sweep agents trust`, that their answers must be signed with.
//! - [`kafka`]: reading records from a topic without joining a group.
//! - [`operator`]: who issues commands, and the key they are signed with.
//! - [`names`]: schedule and pack names, and `*` patterns over row names.
//! - [`packfile`]: reading osquery pack files as leniently as osquery.
//! - [`progress`]: a hunt's live progress (a bar on a terminal) and its
//!   closing summary: hosts grouped by outcome and reason, a screenful at most.
//! - [`render`]: tables and NDJSON for the terminal.
#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod fleet;
pub mod identities;
pub mod kafka;
pub mod names;
pub mod operator;
pub mod packfile;
pub mod progress;
pub mod render;

pub use cli::Cli;
pub use error::ControllerError;

/// Runs one parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> Result<u8, ControllerError> {
    let settings = config::Settings::resolve(&cli.connection)?;
    match cli.command {
        cli::Command::Hunt(args) => commands::hunt::run(&settings, args).await,
        cli::Command::Agents(args) => commands::agents::run(&settings, args).await,
        cli::Command::Results(args) => commands::results::run(&settings, args).await,
        cli::Command::Matches(args) => commands::matches::run(&settings, args).await,
        cli::Command::Keygen(args) => commands::keygen::run(args),
        cli::Command::Schedule(cmd) => commands::schedule::run(&settings, cmd).await,
        cli::Command::Pack(cmd) => commands::pack::run(&settings, cmd).await,
        cli::Command::Tail(args) => commands::tail::run(&settings, args).await,
    }
}
