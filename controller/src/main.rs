//! `sweep`: parse the command line, set up logging, run the command.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use sweep_controller::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    sweep_proto::runtime::init_tracing("warn");
    match sweep_controller::run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("Error: {}", sweep_proto::text::printable(&e.to_string()));
            if let Some(hint) = e.hint() {
                eprintln!("  {hint}");
            }
            ExitCode::from(1)
        }
    }
}
