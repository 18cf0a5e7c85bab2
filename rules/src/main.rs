//! `sweep-rules`: parse the command line, set up logging, load config and
//! rules, run the consumer until SIGTERM or SIGINT.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use sweep_rules::cli::{Cli, Command};
use sweep_rules::{examples, rule, Config, RuleSet};

/// `sweep-rules test DIR`.
fn test(dir: &std::path::Path) -> ExitCode {
    let rules = match rule::load_dir(dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(2);
        }
    };
    let outcomes = examples::run(&rules);
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.passed()).collect();
    for o in &failed {
        println!(
            "FAIL {}: {}: expected {} match(es), got {}",
            o.rule, o.example, o.expected, o.got
        );
    }
    let without: Vec<&str> = rules
        .iter()
        .filter(|r| r.spec.example.is_empty())
        .map(|r| r.id.as_str())
        .collect();
    println!(
        "{} of {} example(s) passed, {} rule(s) in {}{}",
        outcomes.len() - failed.len(),
        outcomes.len(),
        rules.len(),
        dir.display(),
        if without.is_empty() {
            String::new()
        } else {
            format!("; without examples: {}", without.join(", "))
        }
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

// One thread for the async parts (the admin endpoint, pins, signals): the
// workers are threads of their own, and a scrape should not wake two.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Test { dir }) = &cli.command {
        return test(dir);
    }
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
