//! `sweep-rules`: parse the command line, set up logging, load config and
//! rules, run the consumer until SIGTERM or SIGINT.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sweep_rules::{rule, Config, RuleSet};

#[derive(Parser)]
#[command(
    name = "sweep-rules",
    version,
    about = "Evaluate detection rules on sweep's result rows"
)]
struct Cli {
    /// The TOML configuration file.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Directory of rule files (overrides the config's rules_dir).
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Check the rules and exit.
    #[arg(long)]
    check: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    sweep_proto::runtime::init_tracing("info");
    let mut config = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("Error: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    if let Some(dir) = cli.rules {
        config.rules_dir = dir;
    }
    let rules = match rule::load_dir(&config.rules_dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!(
            "{} rule(s) OK in {}",
            rules.len(),
            config.rules_dir.display()
        );
        return ExitCode::SUCCESS;
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        sweep_proto::runtime::shutdown_signal().await;
        let _ = tx.send(true);
    });
    match sweep_rules::consumer::run(config, RuleSet::new(rules), rx).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "sweep-rules stopped");
            ExitCode::from(1)
        }
    }
}
