//! Writes `sweep`'s man pages and shell completions into OUTDIR (see
//! ops/packaging/gen_docs.rs); `ops/package` runs it:
//! `cargo run -p sweep-controller --example sweep-docs -- OUTDIR`.
#![forbid(unsafe_code)]

#[path = "../../ops/packaging/gen_docs.rs"]
mod gen_docs;

fn main() -> std::process::ExitCode {
    gen_docs::main_for(<sweep_controller::Cli as clap::CommandFactory>::command())
}
