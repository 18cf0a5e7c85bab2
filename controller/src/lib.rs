//! `sweep`, the operator's CLI.
//!
//! - [`cli`]: the command line (clap), shared connection flags.
//! - [`console`]: `sweep console`, the web page (axum, assets embedded).
//! - [`config`]: where connection settings come from: flags, environment,
//!   a TOML file, defaults that reach the quickstart cluster.
//! - [`commands`]: one file per subcommand (`hunt`, `results`, `agents`,
//!   `matches`, `keygen`, `schedule`, `pack`, `tail`).
//! - [`fleet`]: reading live agents from the coordination store.
//! - [`hunting`]: issuing a hunt and following it as it runs, for any
//!   front-end (`sweep hunt`, the console): guard, targets, partition, the
//!   signed write, then rows, checked answers, counts and every host's
//!   outcome as events.
//! - [`identities`]: agents' identity keys, pinned on first sight or by
//!   `sweep agents trust`, that their answers must be signed with.
//! - [`kafka`]: reading records from a topic without joining a group.
//! - [`operator`]: who issues commands, and the key they are signed with.
//! - [`names`]: schedule and pack names, and `*` patterns over row names.
//! - [`packfile`]: reading osquery pack files as leniently as osquery.
//! - [`progress`]: a hunt's live progress (a bar on a terminal) and its
//!   closing summary: hosts grouped by outcome and reason, a screenful at most.
//! - [`render`]: text tables (comfy-table) and cells for people.
//! - [`output`]: `--format table|json|ndjson|csv`: one writer of rows for
//!   every command that prints them, and for `sweep hunt --output FILE`.
#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod error;
pub mod fleet;
pub mod hunting;
pub mod identities;
pub mod kafka;
pub mod names;
pub mod operator;
pub mod output;
pub mod packfile;
pub mod progress;
pub mod render;

pub use cli::Cli;
pub use error::ControllerError;

/// Runs one parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> Result<u8, ControllerError> {
    let settings = config::Settings::resolve(&cli.connection)?;
    let outcome = match cli.command {
        cli::Command::Console(args) => console::run(&settings, args).await,
        cli::Command::Hunt(args) => commands::hunt::run(&settings, args).await,
        cli::Command::Agents(args) => commands::agents::run(&settings, args).await,
        cli::Command::Results(args) => commands::results::run(&settings, args).await,
        cli::Command::Matches(args) => commands::matches::run(&settings, args).await,
        cli::Command::Keygen(args) => commands::keygen::run(args),
        cli::Command::Schedule(cmd) => commands::schedule::run(&settings, cmd).await,
        cli::Command::Pack(cmd) => commands::pack::run(&settings, cmd).await,
        cli::Command::Tail(args) => commands::tail::run(&settings, args).await,
    };
    // An unreachable store (etcd, ZooKeeper) or broker is named with what was tried.
    outcome.map_err(|e| e.explained(&settings))
}
