//! Writes `sweep-agent`'s man pages and shell completions into OUTDIR (see
//! ops/packaging/gen_docs.rs); `ops/package` runs it:
//! `cargo run -p sweep-agent --example sweep-agent-docs -- OUTDIR`.
#![forbid(unsafe_code)]

#[path = "../../ops/packaging/gen_docs.rs"]
mod gen_docs;

fn main() -> std::process::ExitCode {
    gen_docs::main_for(<sweep_agent::cli::Cli as clap::CommandFactory>::command())
}
