//! `sweep-agent shell`: an interactive SQL console over this host's tables,
//! in the spirit of osqueryi.
//!
//! On a terminal it edits lines with rustyline and keeps history in
//! `$HOME/.sweep_history`; from a pipe it runs every statement with no prompt
//! and fails if any statement did. Both feed the same [`Session`], which owns
//! everything but the terminal so it can be tested without one.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use sweep_proto::text::printable;

use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Config, Context, Editor, Helper};

use crate::engine::{Engine, Limits, QueryError};
use crate::error::AgentError;
use crate::output::{self, Mode};
use crate::tables::{Budget, ColumnOption, Registry, Table};

const PROMPT: &str = "sweep> ";
/// As wide as [`PROMPT`], so continued lines stay aligned (as osqueryi's do).
const CONTINUATION: &str = "  ...> ";

const HELP: &str = "\
.exit             Exit the shell
.help             Show this help
.mode [MODE]      Set the output mode: table, line, json or csv (no MODE: show it)
.quit             Exit the shell
.schema [TABLE]   Show the CREATE TABLE statement of TABLE, or of every table
.tables [TEXT]    List the tables, or those whose name contains TEXT
.timer on|off     After each query, show its run time, rows generated per table
                  and OS reads
SQL statements end with ';' and may span lines.
";

const COMMANDS: &[&str] = &[
    ".exit", ".help", ".mode", ".quit", ".schema", ".tables", ".timer",
];

/// What the caller should do after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    Quit,
}

/// Where the statement scanner is, carried from one line to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    Code,
    /// Inside a string or quoted identifier that this character closes.
    Quoted(char),
    /// Inside a `/* */` comment.
    Comment,
}

/// Cancels the query running now; the shell's Ctrl-C handler holds one.
#[derive(Clone)]
pub struct Interrupt(Arc<Mutex<Arc<Budget>>>);

impl Interrupt {
    pub fn interrupt(&self) {
        if let Ok(budget) = self.0.lock() {
            budget
                .cancelled
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A fresh budget for the next query, so an earlier Ctrl-C cannot stop it.
    fn arm(&self) -> Arc<Budget> {
        let budget = Budget::unlimited();
        if let Ok(mut current) = self.0.lock() {
            *current = budget.clone();
        }
        budget
    }
}

/// One console: output mode, timer, the statement being typed, and the engine.
pub struct Session {
    engine: Engine,
    mode: Mode,
    timer: bool,
    /// Text of the unfinished statement (empty at a fresh prompt).
    pending: String,
    lex: Lex,
    /// Whether `pending` holds more than blanks and comments.
    has_sql: bool,
    failures: usize,
    interrupt: Interrupt,
}

impl Session {
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            mode: Mode::Table,
            timer: false,
            pending: String::new(),
            lex: Lex::Code,
            has_sql: false,
            failures: 0,
            interrupt: Interrupt(Arc::new(Mutex::new(Budget::unlimited()))),
        }
    }

    pub fn prompt(&self) -> &'static str {
        if self.pending.is_empty() {
            PROMPT
        } else {
            CONTINUATION
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Statements and commands that failed so far.
    pub fn failures(&self) -> usize {
        self.failures
    }

    pub fn interrupt_handle(&self) -> Interrupt {
        self.interrupt.clone()
    }

    /// Drops the unfinished statement (Ctrl-C at the prompt).
    pub fn discard(&mut self) {
        self.pending.clear();
        self.lex = Lex::Code;
        self.has_sql = false;
    }

    /// Takes one line of input (or several, as a paste or a recalled history
    /// entry brings): runs each statement it completes and each dot command.
    pub fn handle_line(
        &mut self,
        text: &str,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> io::Result<Action> {
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if self.pending.is_empty() && line.trim_start().starts_with('.') {
                if self.command(line.trim(), out, err)? == Action::Quit {
                    return Ok(Action::Quit);
                }
                continue;
            }
            for sql in self.scan(line) {
                self.run_statement(&sql, out, err)?;
            }
        }
        Ok(Action::Continue)
    }

    /// End of input: runs a last statement that lacks its `;`.
    pub fn finish(&mut self, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let run = self.has_sql || matches!(self.lex, Lex::Quoted(_));
        self.discard();
        if run {
            self.run_statement(pending.trim(), out, err)?;
        }
        Ok(())
    }

    /// Adds `line` to the pending text and returns the statements it ends.
    /// A `;` ends a statement unless it is quoted or in a comment.
    fn scan(&mut self, line: &str) -> Vec<String> {
        let mut done = Vec::new();
        let mut start = 0;
        let mut chars = line.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match self.lex {
                Lex::Quoted(close) => {
                    // A doubled quote ('it''s') closes and reopens: same result.
                    if c == close {
                        self.lex = Lex::Code;
                    }
                }
                Lex::Comment => {
                    if c == '*' && chars.next_if(|&(_, n)| n == '/').is_some() {
                        self.lex = Lex::Code;
                    }
                }
                Lex::Code => match c {
                    '\'' | '"' | '`' => {
                        self.lex = Lex::Quoted(c);
                        self.has_sql = true;
                    }
                    '[' => {
                        self.lex = Lex::Quoted(']');
                        self.has_sql = true;
                    }
                    // The rest of the line is a comment.
                    '-' if chars.peek().is_some_and(|&(_, n)| n == '-') => break,
                    '/' if chars.next_if(|&(_, n)| n == '*').is_some() => self.lex = Lex::Comment,
                    ';' => {
                        self.pending.push_str(&line[start..i]);
                        start = i + 1;
                        let sql = std::mem::take(&mut self.pending);
                        if std::mem::take(&mut self.has_sql) {
                            done.push(sql.trim().to_string());
                        }
                    }
                    c if !c.is_whitespace() => self.has_sql = true,
                    _ => {}
                },
            }
        }
        self.pending.push_str(&line[start..]);
        self.pending.push('\n');
        // Blanks or a comment after the last `;` do not make a statement.
        if self.lex == Lex::Code && !self.has_sql {
            self.pending.clear();
        }
        done
    }

    fn run_statement(
        &mut self,
        sql: &str,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> io::Result<()> {
        let cancel = self.interrupt.arm();
        let result = self.engine.run_with(sql, cancel.clone());
        // Rows a limit cut short are still worth seeing, before the error. A
        // query that never started has no columns, and nothing to render.
        if !result.columns.is_empty() {
            out.write_all(output::render(&result, self.mode).as_bytes())?;
        }
        if let Some(e) = &result.error {
            self.failures += 1;
            // Only the shell cancels this budget, so the engine's "watchdog"
            // wording would mislead.
            let interrupted = cancel.is_over() && matches!(e, QueryError::Limit(_));
            out.flush()?;
            if interrupted {
                writeln!(err, "Error: interrupted")?;
            } else {
                writeln!(err, "Error: {}", printable(&e.to_string()))?;
            }
            err.flush()?;
        }
        if self.timer {
            writeln!(out, "Run Time: {:.3}s", result.elapsed.as_secs_f64())?;
            let counts = |m: &std::collections::BTreeMap<&str, u64>| {
                m.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if !result.generated.is_empty() {
                writeln!(out, "Rows generated: {}", counts(&result.generated))?;
            }
            if !result.reads.is_empty() {
                writeln!(out, "OS reads: {}", counts(&result.reads))?;
            }
        }
        out.flush()
    }

    fn command(
        &mut self,
        line: &str,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> io::Result<Action> {
        // `.tables;` is an easy slip after typing SQL all day; forgive it.
        let line = line.trim_end_matches(';');
        let mut words = line.split_whitespace();
        let name = words.next().unwrap_or_default();
        let args: Vec<&str> = words.collect();
        let registry = self.engine.registry().clone();
        let result: Result<String, String> = match (name, args.as_slice()) {
            (".quit" | ".exit", []) => return Ok(Action::Quit),
            (".help", []) => Ok(HELP.to_string()),
            (".tables", [] | [_]) => {
                let filter = args.first().copied().unwrap_or_default();
                Ok(registry
                    .tables()
                    .iter()
                    .filter(|t| t.name().contains(filter))
                    .map(|t| format!("  => {}\n", t.name()))
                    .collect())
            }
            (".schema", []) => Ok(registry
                .tables()
                .iter()
                .map(|t| schema(t.as_ref()) + "\n")
                .collect()),
            (".schema", [table]) => match registry.get(table) {
                Some(t) => Ok(schema(t.as_ref()) + "\n"),
                None => Err(format!("no such table: {table}")),
            },
            (".mode", []) => Ok(format!("current output mode: {}\n", mode_name(self.mode))),
            (".mode", [mode]) => mode.parse().map(|m| {
                self.mode = m;
                String::new()
            }),
            (".timer", []) => Ok(format!(
                "timer is {}\n",
                if self.timer { "on" } else { "off" }
            )),
            (".timer", ["on"]) => {
                self.timer = true;
                Ok(String::new())
            }
            (".timer", ["off"]) => {
                self.timer = false;
                Ok(String::new())
            }
            (".timer", _) => Err("usage: .timer on|off".into()),
            _ if COMMANDS.contains(&name) => Err(format!(
                "invalid arguments to {name}; enter \".help\" for usage"
            )),
            _ => Err(format!(
                "unknown command: {name}; enter \".help\" for the list"
            )),
        };
        match result {
            Ok(text) => out.write_all(text.as_bytes())?,
            Err(why) => {
                self.failures += 1;
                out.flush()?;
                writeln!(err, "Error: {}", printable(&why.to_string()))?;
                err.flush()?;
            }
        }
        out.flush()?;
        Ok(Action::Continue)
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Table => "table",
        Mode::Line => "line",
        Mode::Json => "json",
        Mode::Csv => "csv",
    }
}

/// A table's `CREATE TABLE` text as osqueryi's `.schema` prints it: the columns
/// whose constraints an index serves form the primary key.
fn schema(table: &dyn Table) -> String {
    let columns = table.columns();
    let defs: Vec<String> = columns
        .iter()
        .map(|c| {
            let hidden = if c.option == ColumnOption::Hidden {
                " HIDDEN"
            } else {
                ""
            };
            format!("`{}` {}{hidden}", c.name, c.ty.sql())
        })
        .collect();
    let keys: Vec<String> = columns
        .iter()
        .filter(|c| {
            matches!(
                c.option,
                ColumnOption::Index | ColumnOption::Required | ColumnOption::Additional
            )
        })
        .map(|c| format!("`{}`", c.name))
        .collect();
    // Like osquery: additional columns alone make no key.
    let indexed = columns
        .iter()
        .any(|c| matches!(c.option, ColumnOption::Index | ColumnOption::Required));
    if indexed {
        format!(
            "CREATE TABLE {}({}, PRIMARY KEY ({})) WITHOUT ROWID;",
            table.name(),
            defs.join(", "),
            keys.join(", ")
        )
    } else {
        format!("CREATE TABLE {}({});", table.name(), defs.join(", "))
    }
}

/// Runs the shell on stdin: interactive on a terminal, a script otherwise.
/// From a pipe, the exit code is a failure if any statement failed.
pub fn run(limits: Limits) -> Result<ExitCode, AgentError> {
    let engine = Engine::new(Arc::new(Registry::default()), limits);
    let mut session = Session::new(engine);
    if io::stdin().is_terminal() {
        interactive(&mut session)?;
        return Ok(ExitCode::SUCCESS);
    }
    script(&mut session)?;
    Ok(if session.failures() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A closed stdout (`| head`) ends the shell quietly; other write errors fail it.
fn output_error(e: io::Error) -> Result<(), AgentError> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(AgentError::io("writing output", e))
    }
}

fn script(session: &mut Session) -> Result<(), AgentError> {
    let mut stdin = io::stdin().lock();
    let (mut out, mut err) = (io::stdout().lock(), io::stderr());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = stdin
            .read_until(b'\n', &mut buf)
            .map_err(|e| AgentError::io("reading stdin", e))?;
        if n == 0 {
            return session.finish(&mut out, &mut err).or_else(output_error);
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.strip_suffix('\n').unwrap_or(&line);
        match session.handle_line(line, &mut out, &mut err) {
            Ok(Action::Continue) => {}
            Ok(Action::Quit) => return Ok(()),
            Err(e) => return output_error(e),
        }
    }
}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".sweep_history"))
}

fn interactive(session: &mut Session) -> Result<(), AgentError> {
    let terminal = |e: ReadlineError| AgentError::io("terminal", io::Error::other(e));
    let config = Config::builder()
        .max_history_size(10_000)
        .and_then(|b| b.history_ignore_dups(true))
        .map_err(terminal)?
        .history_ignore_space(true)
        .auto_add_history(false)
        .build();
    let mut editor: Editor<Completion, DefaultHistory> =
        Editor::with_config(config).map_err(terminal)?;
    editor.set_helper(Some(Completion::new(session.engine.registry())));
    let history = history_path();
    if let Some(path) = &history {
        match editor.load_history(path) {
            Ok(()) => {}
            Err(ReadlineError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("warning: cannot read history {}: {e}", path.display()),
        }
    }
    catch_ctrl_c(session.interrupt_handle());
    println!(
        "sweep-agent shell {}: this host's tables as SQL. Enter \".help\" for help.",
        env!("CARGO_PKG_VERSION")
    );
    // The raw lines of the statement being typed, one history entry when done.
    let mut entry: Vec<String> = Vec::new();
    let mut history_warned = false;
    loop {
        let line = match editor.readline(session.prompt()) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                session.discard();
                entry.clear();
                continue;
            }
            Err(ReadlineError::WindowResized) => continue,
            Err(ReadlineError::Eof) => {
                let (mut out, mut err) = (io::stdout().lock(), io::stderr());
                return session.finish(&mut out, &mut err).or_else(output_error);
            }
            Err(e) => return Err(terminal(e)),
        };
        entry.push(line.clone());
        let action = {
            let (mut out, mut err) = (io::stdout().lock(), io::stderr());
            session.handle_line(&line, &mut out, &mut err)
        };
        if session.prompt() == PROMPT {
            let text = std::mem::take(&mut entry).join("\n");
            if !text.trim().is_empty() {
                let _ = editor.add_history_entry(text);
                // Appending after each entry keeps history across a crash and
                // merges with other shells writing the same file.
                if let Some(path) = &history {
                    if let Err(e) = editor.append_history(path) {
                        if !history_warned {
                            eprintln!("warning: cannot save history {}: {e}", path.display());
                            history_warned = true;
                        }
                    }
                }
            }
        }
        match action {
            Ok(Action::Continue) => {}
            Ok(Action::Quit) => return Ok(()),
            Err(e) => return output_error(e),
        }
    }
}

/// Ctrl-C during a query stops that query, not the shell. At the prompt the
/// terminal is raw, so Ctrl-C reaches rustyline as a key instead.
fn catch_ctrl_c(interrupt: Interrupt) {
    let spawned = std::thread::Builder::new()
        .name("ctrl-c".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(error = %e, "Ctrl-C will end the shell");
                    return;
                }
            };
            runtime.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                match signal(SignalKind::interrupt()) {
                    Ok(mut sigint) => {
                        while sigint.recv().await.is_some() {
                            interrupt.interrupt();
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "Ctrl-C will end the shell"),
                }
            });
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "Ctrl-C will end the shell");
    }
}

/// Tab completion: dot commands at the start of a line, else table and
/// column names.
struct Completion {
    words: Vec<String>,
}

impl Completion {
    fn new(registry: &Registry) -> Self {
        let mut words: Vec<String> = registry
            .tables()
            .iter()
            .flat_map(|t| {
                std::iter::once(t.name())
                    .chain(t.columns().iter().map(|c| c.name))
                    .map(str::to_string)
            })
            .collect();
        words.sort();
        words.dedup();
        Self { words }
    }
}

impl Completer for Completion {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let before = &line[..pos];
        let start = before
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let word = &before[start..];
        if before[..start].trim_start() == "." {
            let dot = start - 1;
            let found = COMMANDS
                .iter()
                .filter(|c| c.starts_with(&before[dot..]))
                .map(|c| c.to_string())
                .collect();
            return Ok((dot, found));
        }
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        let lower = word.to_ascii_lowercase();
        let found = self
            .words
            .iter()
            .filter(|w| w.starts_with(&lower))
            .cloned()
            .collect();
        Ok((start, found))
    }
}

impl Hinter for Completion {
    type Hint = String;
}

impl Highlighter for Completion {}

impl Validator for Completion {}

impl Helper for Completion {}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session::new(Engine::new(
            Arc::new(Registry::default()),
            Limits::default(),
        ))
    }

    /// Feeds `input` line by line; returns stdout, stderr and the last action.
    fn feed(s: &mut Session, input: &str) -> (String, String, Action) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut action = Action::Continue;
        for line in input.lines() {
            action = s.handle_line(line, &mut out, &mut err).unwrap();
            if action == Action::Quit {
                break;
            }
        }
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
            action,
        )
    }

    #[test]
    fn a_statement_accumulates_until_its_semicolon() {
        let mut s = session();
        assert_eq!(s.prompt(), PROMPT);
        let (out, err, _) = feed(&mut s, ".mode csv\nSELECT uid\n  FROM users");
        assert_eq!((out.as_str(), err.as_str()), ("", ""));
        assert_eq!(s.prompt(), CONTINUATION);
        // A dot inside a statement is SQL, not a command.
        let (out, err, _) = feed(&mut s, "  WHERE username = 'root'\n;");
        assert_eq!(err, "");
        assert_eq!(out, "uid\n0\n");
        assert_eq!(s.prompt(), PROMPT);
    }

    #[test]
    fn semicolons_in_quotes_and_comments_do_not_split() {
        let mut s = session();
        let (out, err, _) = feed(
            &mut s,
            ".mode csv\n\
             SELECT 'a;b' AS s; SELECT \"x;y\" FROM (SELECT 1 AS \"x;y\");\n\
             SELECT 'two\n\
             ;lines' AS s -- a comment; not the end\n\
             ; /* a; comment */ SELECT 'it''s;' AS s;  -- trailing",
        );
        assert_eq!(err, "");
        assert_eq!(out, "s\na;b\nx;y\n1\ns\n\"two\n;lines\"\ns\nit's;\n");
        // What followed the last `;` was only a comment: nothing is pending.
        assert_eq!(s.prompt(), PROMPT);
        assert_eq!(s.failures(), 0);
    }

    #[test]
    fn empty_statements_are_skipped() {
        let mut s = session();
        let (out, err, _) = feed(&mut s, ";\n  ;  ;\n-- only a comment;\n/* x; */;");
        assert_eq!((out.as_str(), err.as_str()), ("", ""));
        assert_eq!(s.failures(), 0);
        assert_eq!(s.prompt(), PROMPT);
    }

    #[test]
    fn finish_runs_a_statement_without_its_semicolon() {
        let mut s = session();
        feed(&mut s, ".mode csv\nSELECT 7 AS n");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        s.finish(&mut out, &mut err).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "n\n7\n");
        assert!(err.is_empty());
        assert_eq!(s.prompt(), PROMPT);
    }

    #[test]
    fn tables_lists_and_filters() {
        let mut s = session();
        let (all, _, _) = feed(&mut s, ".tables");
        assert!(all.contains("  => processes\n"), "{all}");
        assert!(all.contains("  => users\n"), "{all}");
        assert_eq!(all.lines().count(), Registry::default().tables().len());
        let (some, _, _) = feed(&mut s, ".tables proc");
        assert!(some.contains("  => processes\n"), "{some}");
        assert!(some.contains("  => process_envs\n"), "{some}");
        assert!(!some.contains("users"), "{some}");
        let (none, err, _) = feed(&mut s, ".tables no_such_thing");
        assert_eq!((none.as_str(), err.as_str()), ("", ""));
    }

    #[test]
    fn schema_prints_osquery_style_create_table() {
        let mut s = session();
        let (out, err, _) = feed(&mut s, ".schema users");
        assert_eq!(err, "");
        assert_eq!(
            out,
            "CREATE TABLE users(`uid` BIGINT, `gid` BIGINT, `uid_signed` BIGINT, \
             `gid_signed` BIGINT, `username` TEXT, `description` TEXT, `directory` TEXT, \
             `shell` TEXT, `uuid` TEXT, `pid_with_namespace` INTEGER HIDDEN, \
             `include_remote` INTEGER HIDDEN, PRIMARY KEY (`uid`, `username`, `uuid`)) \
             WITHOUT ROWID;\n"
        );
        let (all, _, _) = feed(&mut s, ".schema");
        assert_eq!(all.lines().count(), Registry::default().tables().len());
        assert!(all.contains("CREATE TABLE processes(`pid` BIGINT"), "{all}");
        let (out, err, _) = feed(&mut s, ".schema nope");
        assert_eq!(out, "");
        assert_eq!(err, "Error: no such table: nope\n");
        assert_eq!(s.failures(), 1);
    }

    #[test]
    fn mode_shows_switches_and_rejects() {
        let mut s = session();
        assert_eq!(feed(&mut s, ".mode").0, "current output mode: table\n");
        let sql = "SELECT uid, username FROM users WHERE username = 'root';";

        let (table, _, _) = feed(&mut s, sql);
        assert!(table.contains("| uid | username |"), "{table}");
        assert!(table.contains("| 0   | root     |"), "{table}");

        feed(&mut s, ".mode json");
        assert_eq!(s.mode(), Mode::Json);
        let (json, _, _) = feed(&mut s, sql);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v, serde_json::json!([{"uid": 0, "username": "root"}]));

        feed(&mut s, ".mode line");
        assert_eq!(feed(&mut s, sql).0, "     uid = 0\nusername = root\n");

        feed(&mut s, ".mode csv");
        assert_eq!(feed(&mut s, sql).0, "uid,username\n0,root\n");

        let (out, err, _) = feed(&mut s, ".mode pretty");
        assert_eq!(out, "");
        assert!(err.starts_with("Error: unknown mode \"pretty\""), "{err}");
        assert_eq!(s.mode(), Mode::Csv);
        assert_eq!(feed(&mut s, ".mode").0, "current output mode: csv\n");
    }

    #[test]
    fn timer_reports_time_and_rows_generated() {
        let mut s = session();
        assert_eq!(feed(&mut s, ".timer").0, "timer is off\n");
        feed(&mut s, ".timer on\n.mode csv");
        let (out, err, _) = feed(&mut s, "SELECT uid FROM users WHERE username = 'root';");
        assert_eq!(err, "");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[..2], ["uid", "0"]);
        let time = lines[2].strip_prefix("Run Time: ").unwrap();
        assert!(time.ends_with('s'), "{out}");
        time.trim_end_matches('s').parse::<f64>().unwrap();
        assert!(lines[3].starts_with("Rows generated: users="), "{out}");
        let sql = format!(
            "SELECT name FROM processes WHERE pid = {};",
            std::process::id()
        );
        let (out, _, _) = feed(&mut s, &sql);
        assert!(out.contains("\nRows generated: processes=1\n"), "{out}");
        assert!(out.contains("\nOS reads: /proc/<pid>"), "{out}");

        feed(&mut s, ".timer off");
        assert_eq!(feed(&mut s, "SELECT 1 AS x;").0, "x\n1\n");
        let (_, err, _) = feed(&mut s, ".timer maybe");
        assert_eq!(err, "Error: usage: .timer on|off\n");
    }

    #[test]
    fn help_quit_and_unknown_commands() {
        let mut s = session();
        let (help, _, action) = feed(&mut s, ".help");
        assert_eq!(action, Action::Continue);
        for c in COMMANDS {
            assert!(help.contains(c), "{c} missing from\n{help}");
        }
        assert_eq!(feed(&mut s, ".quit").2, Action::Quit);
        assert_eq!(feed(&mut s, "  .exit").2, Action::Quit);
        assert_eq!(feed(&mut s, ".tables;").2, Action::Continue);

        let (out, err, action) = feed(&mut s, ".frobnicate now");
        assert_eq!(action, Action::Continue);
        assert_eq!(out, "");
        assert_eq!(
            err,
            "Error: unknown command: .frobnicate; enter \".help\" for the list\n"
        );
        let (_, err, action) = feed(&mut s, ".quit now");
        assert_eq!(action, Action::Continue);
        assert!(
            err.starts_with("Error: invalid arguments to .quit"),
            "{err}"
        );
        assert_eq!(s.failures(), 2);
    }

    #[test]
    fn a_failed_statement_is_reported_and_the_session_goes_on() {
        let mut s = session();
        let (out, err, action) = feed(
            &mut s,
            ".mode csv\nSELECT * FROM no_such_table;\nSELECT 2 AS n;",
        );
        assert_eq!(action, Action::Continue);
        assert_eq!(err, "Error: query refused: no such table: no_such_table\n");
        assert_eq!(out, "n\n2\n");
        assert_eq!(s.failures(), 1);
        let (_, err, _) = feed(&mut s, "SELECT nope FROM users;");
        assert!(
            err.starts_with("Error: query refused: no such column: nope"),
            "{err}"
        );
        assert_eq!(s.failures(), 2);
    }

    #[test]
    fn rows_before_a_limit_are_printed_then_the_error() {
        let limits = Limits {
            max_rows: 2,
            ..Limits::default()
        };
        let mut s = Session::new(Engine::new(Arc::new(Registry::default()), limits));
        let (out, err, _) = feed(
            &mut s,
            ".mode csv\n\
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 5)\n\
             SELECT x FROM c;",
        );
        assert_eq!(out, "x\n1\n2\n");
        assert_eq!(err, "Error: query stopped: row limit of 2 reached\n");
        assert_eq!(s.failures(), 1);
    }

    #[test]
    fn an_interrupt_stops_the_running_query_only() {
        let mut s = session();
        let handle = s.interrupt_handle();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ticker = {
            let done = done.clone();
            std::thread::spawn(move || {
                // Keep interrupting: the query arms a fresh budget when it starts.
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    handle.interrupt();
                }
            })
        };
        let started = std::time::Instant::now();
        let (_, err, _) = feed(
            &mut s,
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)\n\
             SELECT count(*) FROM c;",
        );
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        ticker.join().unwrap();
        assert_eq!(err, "Error: interrupted\n");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        // The next query gets a budget of its own.
        feed(&mut s, ".mode csv");
        assert_eq!(feed(&mut s, "SELECT 1 AS x;").0, "x\n1\n");
    }

    #[test]
    fn completion_offers_commands_tables_and_columns() {
        let c = Completion::new(&Registry::default());
        let history = DefaultHistory::new();
        let ctx = Context::new(&history);
        let (start, found) = c.complete(".sc", 3, &ctx).unwrap();
        assert_eq!((start, found), (0, vec![".schema".to_string()]));
        let (start, found) = c.complete("SELECT * FROM proce", 19, &ctx).unwrap();
        assert_eq!(start, 14);
        assert!(found.contains(&"processes".to_string()), "{found:?}");
        let (_, found) = c.complete("SELECT user", 11, &ctx).unwrap();
        assert!(found.contains(&"username".to_string()), "{found:?}");
    }

    /// Every table of the shared schema, new ones included, is listed by
    /// `.tables`, shown with all its columns by `.schema`, and completed (name
    /// and columns) from its first letters.
    #[test]
    fn every_table_is_listed_described_and_completed() {
        let mut s = session();
        let (listed, _, _) = feed(&mut s, ".tables");
        let c = Completion::new(&Registry::default());
        let history = DefaultHistory::new();
        let ctx = Context::new(&history);
        for table in sweep_proto::schema::TABLES {
            assert!(
                listed.contains(&format!("  => {}\n", table.name)),
                "{}",
                table.name
            );
            let (schema, err, _) = feed(&mut s, &format!(".schema {}", table.name));
            assert_eq!(err, "", "{}", table.name);
            for column in table.columns {
                assert!(schema.contains(&format!("`{}` ", column.name)), "{schema}");
            }
            let line = format!("SELECT * FROM {}", &table.name[..table.name.len() - 1]);
            let (_, found) = c.complete(&line, line.len(), &ctx).unwrap();
            assert!(found.contains(&table.name.to_string()), "{line}: {found:?}");
        }
        // A column of a new table: osquery_schedule's `interval`.
        let (_, found) = c.complete("SELECT interv", 13, &ctx).unwrap();
        assert_eq!(found, ["interval"]);
    }
}
