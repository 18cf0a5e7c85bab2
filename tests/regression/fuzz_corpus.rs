//! Replays the fuzzers' corpora on the stable toolchain: every input under
//! `fuzz/corpus/<target>/` (seeds and what the fuzzer found, minimized) and
//! `fuzz/regressions/<target>/` (inputs that once failed) goes through the
//! same checks the cargo-fuzz targets run (`fuzz/src/lib.rs`, included here
//! as a module). A missing or empty corpus fails, so a renamed target cannot
//! pass silently. Needs neither etcd nor Kafka.

#[path = "../../fuzz/src/lib.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let (_, check) = checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no fuzz target named {target}"));
    let corpus = fuzz_dir().join("corpus").join(target);
    let mut files = inputs(&corpus);
    assert!(
        !files.is_empty(),
        "the corpus of fuzz target {target} is missing or empty: {}",
        corpus.display()
    );
    files.extend(inputs(&fuzz_dir().join("regressions").join(target)));
    let mut failed = Vec::new();
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} inputs of {target} fail (the panics are above; reproduce one with \
         `cargo +nightly fuzz run {target} <file>`):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn every_target_has_a_corpus_and_a_test() {
    let names: Vec<&str> = checks::TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        ["guard", "packfile", "records", "commands", "condition"],
        "a target was added or renamed: give it a #[test] below"
    );
    for dir in ["corpus", "regressions"] {
        for entry in std::fs::read_dir(fuzz_dir().join(dir))
            .into_iter()
            .flatten()
        {
            let name = entry.expect("a readable directory entry").file_name();
            let name = name.to_string_lossy();
            assert!(
                names.contains(&name.as_ref()),
                "fuzz/{dir}/{name} belongs to no fuzz target"
            );
        }
    }
}

#[test]
fn guard() {
    replay("guard");
}

#[test]
fn packfile() {
    replay("packfile");
}

#[test]
fn records() {
    replay("records");
}

#[test]
fn commands() {
    replay("commands");
}

#[test]
fn condition() {
    replay("condition");
}
