//! Man pages and shell completions for one of sweep's binaries, generated
//! from its `clap::Command`. Shared by the three crates' examples
//! (`agent/examples/sweep-agent-docs.rs`, `rules/examples/sweep-rules-docs.rs`,
//! `controller/examples/sweep-docs.rs`, each including this file with
//! `#[path]`), which `ops/package` runs before `cargo deb`:
//!
//! ```sh
//! cargo run -p sweep-agent --example sweep-agent-docs -- OUTDIR
//! ```
//!
//! writes `OUTDIR/man/<bin>.1` plus one page per subcommand
//! (`<bin>-<sub>.1`), and `OUTDIR/completions/<bin>.bash`, `_<bin>` (zsh)
//! and `<bin>.fish`. Examples rather than a subcommand: nothing is added to
//! what users see, and the binaries do not link the generators.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap_complete::Shell;

/// Reads OUTDIR from the command line and writes `cmd`'s docs there.
pub fn main_for(cmd: clap::Command) -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: {} OUTDIR", cmd.get_name());
        return ExitCode::from(2);
    };
    match write(cmd, Path::new(&out)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "Error: writing docs into {}: {e}",
                Path::new(&out).display()
            );
            ExitCode::from(1)
        }
    }
}

/// Writes the man pages and completions; returns the files written.
pub fn write(cmd: clap::Command, out: &Path) -> std::io::Result<Vec<PathBuf>> {
    let man = out.join("man");
    let completions = out.join("completions");
    // Start from empty folders, so a subcommand that was removed leaves no
    // stale page for the package to pick up.
    for dir in [&man, &completions] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
    }
    clap_mangen::generate_to(cmd.clone(), &man)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&man)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    let bin = cmd.get_name().to_string();
    let mut cmd = cmd;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        files.push(clap_complete::generate_to(
            shell,
            &mut cmd,
            &bin,
            &completions,
        )?);
    }
    Ok(files)
}
