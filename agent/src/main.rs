//! `sweep-agent`: parse the command line, set up logging, hand over to the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use sweep_agent::cli::{Cli, Command};
use sweep_agent::fleet::FleetOptions;
use sweep_agent::output::{self, Mode};
use sweep_agent::tables::Registry;
use sweep_agent::{Config, Engine, Limits};

fn main() -> ExitCode {
    let cli = Cli::parse();
    sweep_proto::runtime::init_tracing("info");
    match cli.command {
        Command::Query { sql, json, mode } => {
            let engine = Engine::new(Arc::new(Registry::default()), Limits::default());
            let out = engine.run(&sql);
            let mode = if json { Mode::Json } else { mode };
            print!("{}", output::render(&out, mode));
            match out.error {
                Some(e) => {
                    eprintln!("Error: {}", sweep_proto::text::printable(&e.to_string()));
                    ExitCode::from(1)
                }
                None => ExitCode::SUCCESS,
            }
        }
        Command::Shell => match sweep_agent::shell::run(Limits::default()) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Run { config } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("Error: {e}");
                    return ExitCode::from(2);
                }
            };
            run_async(sweep_agent::daemon::run(config))
        }
        Command::Fleet {
            config,
            agents,
            prefix,
            ramp,
            per_connection,
        } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("Error: {e}");
                    return ExitCode::from(2);
                }
            };
            let opts = FleetOptions {
                agents,
                prefix,
                ramp_per_s: ramp,
                per_connection,
                ..FleetOptions::default()
            };
            run_async(async move {
                let (tx, rx) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    sweep_proto::runtime::shutdown_signal().await;
                    let _ = tx.send(true);
                });
                sweep_agent::fleet::run(config, opts, rx).await
            })
        }
    }
}

/// Runs a daemon future on a multi-threaded runtime; its error ends the
/// process with 1.
fn run_async(
    f: impl std::future::Future<Output = Result<(), sweep_agent::AgentError>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "agent stopped");
            ExitCode::from(1)
        }
    }
}
