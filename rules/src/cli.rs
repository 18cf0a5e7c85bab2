//! The command line of `sweep-rules`. It lives in the library, not in
//! `main.rs`, so the man page and shell-completion generator
//! (`examples/sweep-rules-docs.rs`, run by `ops/package`) builds the same
//! `clap::Command` the binary parses.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sweep-rules",
    version,
    about = "Evaluate detection rules on sweep's result rows"
)]
pub struct Cli {
    /// The TOML configuration file.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Directory of rule files (overrides the config's rules_dir).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Check the rules and exit.
    #[arg(long)]
    pub check: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the examples in a directory's rule files (`[[rule.example]]`):
    /// exit 0 when every example raises the matches it says.
    Test {
        /// Directory of rule files.
        dir: PathBuf,
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

    /// The default config the .deb installs as /etc/sweep/rules.toml must be
    /// one `sweep-rules --config` accepts, reading the rules where the
    /// package puts them.
    #[test]
    fn packaged_config_parses() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/packaging/rules.toml");
        let config = crate::Config::load(&path).expect("ops/packaging/rules.toml");
        assert_eq!(config.rules_dir, PathBuf::from("/etc/sweep/rules"));
        assert_eq!(
            config.state_dir,
            PathBuf::from("/var/lib/sweep-rules"),
            "the unit's StateDirectory"
        );
    }
}
