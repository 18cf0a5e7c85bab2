//! `sweep hunt "SQL"`: the terminal front-end of [`crate::hunting`], which
//! guards the SQL, writes the hunt to etcd on a lease that ends at its
//! expiry and reads the answers from `sweep.hunts`. Here: a progress bar
//! while it runs, then the rows with the host id first (`--format`, or to
//! `--output FILE`), then who failed or did not answer, grouped by reason (a
//! screenful at most; `--outcomes FILE` has every host's outcome).
//!
//! Exit codes: 0 when every live targeted agent answered without error,
//! 1 when some failed or did not answer, or at once when no live agent
//! matches the targets and no host is expected (the hunt is not sent then),
//! 2 when the query was refused before it was sent.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::cli::HuntArgs;
use crate::config::Settings;
use crate::hunting::{self, Finished, HuntEvent, HuntRequest};
use crate::output::{self, Format};
use crate::progress::{self, HostOutcome, Limits, Outcome, Progress};
use crate::{operator, ControllerError};

pub async fn run(settings: &Settings, args: HuntArgs) -> Result<u8, ControllerError> {
    let request = HuntRequest {
        sql: args.sql,
        targets: args.targets.targets()?,
        expect: args.expect,
        timeout: args.timeout,
        expiry: args.expiry,
        issuer: operator::issuer(),
    };
    if let Err(e) = hunting::check(&request) {
        return refused(e);
    }
    // Opened before anything is sent: a path that cannot be written, or
    // that names no format, stops the hunt before it starts.
    let sinks = Sinks::open(
        args.format.format(),
        args.output.as_deref(),
        args.outcomes.as_deref(),
    )?;
    let mut run = match hunting::start(settings, request).await {
        Ok(run) => run,
        Err(e) => return refused(e),
    };
    let mut progress = Progress::new(run.id());
    while let Some(event) = run.next().await? {
        match event {
            HuntEvent::Counts(c) => progress.tick(run.elapsed(), || c),
            HuntEvent::Done(finished) => {
                progress.finish(finished.counts, finished.elapsed);
                return report(finished, sinks, Limits::default());
            }
            // The rows and outcomes are all in `Done`, in order.
            HuntEvent::Row { .. } | HuntEvent::Host(_) => {}
        }
    }
    Err(ControllerError::Usage(format!(
        "hunt {}: ended without its results",
        run.id()
    )))
}

/// Exit 2 for a refused query (nothing was sent); any other error as it is.
fn refused(e: ControllerError) -> Result<u8, ControllerError> {
    match e {
        ControllerError::Refused(why) => {
            eprintln!("Error: {}", sweep_proto::text::printable(&why));
            Ok(2)
        }
        e => Err(e),
    }
}

/// Where a hunt's rows and outcomes go.
pub struct Sinks {
    /// The rows' format on standard output.
    format: Format,
    /// `--output FILE`: the rows there instead.
    rows: Option<RowsFile>,
    /// `--outcomes FILE`: every host's outcome.
    outcomes: Option<OutcomeFile>,
}

impl Sinks {
    /// Opens the files now, so a bad path or file type fails before a hunt
    /// is sent.
    pub fn open(
        format: Format,
        output: Option<&Path>,
        outcomes: Option<&Path>,
    ) -> Result<Self, ControllerError> {
        Ok(Self {
            format,
            rows: output.map(RowsFile::create).transpose()?,
            outcomes: outcomes.map(OutcomeFile::create).transpose()?,
        })
    }
}

/// `--output FILE`: the rows, in the format the file's name ends with.
struct RowsFile {
    path: PathBuf,
    format: Format,
    file: std::fs::File,
}

impl RowsFile {
    fn create(path: &Path) -> Result<Self, ControllerError> {
        let failed =
            |why: String| ControllerError::Usage(format!("--output {}: {why}", path.display()));
        let format = Format::of_path(path).map_err(failed)?;
        let file = std::fs::File::create(path).map_err(|e| failed(e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            format,
            file,
        })
    }
}

/// `--outcomes FILE`: every host's outcome, one NDJSON object per host.
pub struct OutcomeFile {
    path: PathBuf,
    file: std::fs::File,
}

impl OutcomeFile {
    pub fn create(path: &Path) -> Result<Self, ControllerError> {
        let file = std::fs::File::create(path)
            .map_err(|e| ControllerError::Usage(format!("--outcomes {}: {e}", path.display())))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    fn write(self, outcomes: &[HostOutcome]) -> Result<(), ControllerError> {
        let failed = |e: std::io::Error| {
            ControllerError::Usage(format!("--outcomes {}: {e}", self.path.display()))
        };
        let mut out = BufWriter::new(&self.file);
        for o in outcomes {
            writeln!(out, "{}", o.to_line()).map_err(failed)?;
        }
        out.flush().map_err(failed)?;
        Ok(())
    }
}

/// Prints the rows (stdout, or the `--output` file) and who failed or
/// stayed silent (stderr), grouped by reason within `limits`, every host's
/// outcome to the `--outcomes` file; returns the exit code.
pub fn report(finished: Finished, sinks: Sinks, limits: Limits) -> Result<u8, ControllerError> {
    let Finished {
        hunt_id,
        columns,
        rows,
        outcomes,
        answered,
        records_read,
        elapsed,
        waited,
        ..
    } = finished;
    let row_count = rows.len();
    let written_to = write_rows(&columns, rows, sinks.format, sinks.rows)?;
    let hint = match &sinks.outcomes {
        Some(file) => format!(" (every host is in {})", file.path.display()),
        None if waited.is_some() => " (--outcomes FILE lists every host)".to_string(),
        None => String::new(),
    };
    if let Some(file) = sinks.outcomes {
        file.write(&outcomes)?;
    }
    let count = |o: Outcome| outcomes.iter().filter(|h| h.outcome == o).count();
    let failed = count(Outcome::Failed) + count(Outcome::Rejected);
    let silent = count(Outcome::Silent);
    let skipped = count(Outcome::Skipped);
    let mut err = std::io::stderr().lock();
    // Host ids and errors come from agents, and may come from a hostile
    // one: shown, never obeyed, by the terminal (summary_lines makes them
    // printable).
    for line in progress::summary_lines(&progress::groups(&outcomes), limits, &hint) {
        writeln!(err, "{line}")?;
    }
    let all = outcomes.len();
    writeln!(
        err,
        "hunt {hunt_id}: {row_count} row(s) from {answered} of {all} agent(s) in {:.2}s; {failed} failed, {silent} did not answer{}; {records_read} record(s) read{}",
        elapsed.as_secs_f64(),
        if skipped == 0 {
            String::new()
        } else {
            format!(", {skipped} skipped by discovery")
        },
        match written_to {
            Some(path) => format!("; rows in {}", path.display()),
            None => String::new(),
        }
    )?;
    if all == 0 {
        writeln!(err, "no live agent matches the targets")?;
        return Ok(1);
    }
    Ok(if failed == 0 && silent == 0 { 0 } else { 1 })
}

/// The rows, host id first, to the `--output` file when there is one
/// (returning its path) or standard output.
fn write_rows(
    columns: &[String],
    rows: Vec<(String, BTreeMap<String, String>)>,
    format: Format,
    file: Option<RowsFile>,
) -> Result<Option<PathBuf>, ControllerError> {
    let header: Vec<&str> = std::iter::once("host_id")
        .chain(columns.iter().map(String::as_str))
        .collect();
    let cells = rows.into_iter().map(|(host, cols)| {
        std::iter::once(host)
            .chain(
                columns
                    .iter()
                    .map(|c| cols.get(c).cloned().unwrap_or_default()),
            )
            .collect()
    });
    match file {
        Some(f) => {
            let failed = |e: std::io::Error| {
                ControllerError::Usage(format!("--output {}: {e}", f.path.display()))
            };
            output::write_rows(BufWriter::new(&f.file), f.format, &header, cells)
                .map_err(failed)?;
            Ok(Some(f.path))
        }
        None => {
            output::write_rows(std::io::stdout().lock(), format, &header, cells)?;
            Ok(None)
        }
    }
}
