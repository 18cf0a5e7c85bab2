//! A hunt while it runs and when it ends, readable at fleet size.
//!
//! While it runs: a live progress bar on a terminal (answered / targeted,
//! rows, errors, answers per second, elapsed), plain lines every few seconds
//! otherwise (a log, a pipe, CI).
//!
//! When it ends: every host has one [`HostOutcome`]; the hosts that failed,
//! were rejected, were skipped or stayed silent are grouped by outcome and
//! identical reason, and [`summary_lines`] shows the groups in at most a
//! screenful, naming a few hosts per group. A group of a few hosts keeps one
//! `HOST: reason` line per host. The full per-host report is NDJSON
//! ([`HostOutcome::to_line`], `sweep hunt --outcomes FILE`).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use sweep_proto::text::printable;

use crate::render;

/// How often a plain progress line is written when stderr is no terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(2);
/// How often the bar is redrawn on a terminal.
const BAR_EVERY: Duration = Duration::from_millis(100);

/// Where a hunt stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Hosts whose signed status verified (with or without an error).
    pub answered: usize,
    /// Hosts waited for: live targeted agents and expected ones.
    pub targeted: usize,
    pub rows: usize,
    /// Hosts that answered with an error, or whose answer was rejected.
    pub errors: usize,
}

impl Counts {
    /// Answers per second so far.
    pub fn rate(&self, elapsed: Duration) -> f64 {
        let secs = elapsed.as_secs_f64();
        if secs > 0.0 {
            self.answered as f64 / secs
        } else {
            0.0
        }
    }
}

/// The live progress of one hunt on stderr.
pub struct Progress {
    hunt_id: String,
    bar: Option<ProgressBar>,
    last: Option<Instant>,
}

impl Progress {
    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn new(hunt_id: &str) -> Self {
        if std::io::stderr().is_terminal() {
            Self::bar(hunt_id)
        } else {
            Self::plain(hunt_id)
        }
    }

    /// Plain lines every few seconds.
    pub fn plain(hunt_id: &str) -> Self {
        Self {
            hunt_id: hunt_id.to_string(),
            bar: None,
            last: None,
        }
    }

    fn bar(hunt_id: &str) -> Self {
        // The bar takes the width the numbers leave, so the line stays one
        // line on an 80-column terminal even at 10,000 hosts.
        let style = ProgressStyle::with_template(
            "hunt {prefix} [{wide_bar}] {pos}/{len} answered, {msg}, {elapsed}",
        )
        .expect("the template is valid")
        .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(10))
            .with_style(style)
            .with_prefix(hunt_id.to_string())
            .with_message(message(Counts::default(), Duration::ZERO));
        Self {
            hunt_id: hunt_id.to_string(),
            bar: Some(bar),
            last: None,
        }
    }

    /// The plain progress line.
    pub fn text(&self, c: Counts, elapsed: Duration) -> String {
        format!(
            "hunt {}: {}/{} agents answered, {} rows, {} errors, {:.1}/s, {:.1}s",
            self.hunt_id,
            c.answered,
            c.targeted,
            c.rows,
            c.errors,
            c.rate(elapsed),
            elapsed.as_secs_f64()
        )
    }

    /// Shows where the hunt stands, if it is time to; `counts` is only
    /// called then (counting is not free with 10,000 hosts).
    pub fn tick(&mut self, elapsed: Duration, counts: impl FnOnce() -> Counts) {
        let every = if self.bar.is_some() {
            BAR_EVERY
        } else {
            PLAIN_EVERY
        };
        if self.last.is_some_and(|l| l.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        let c = counts();
        match &self.bar {
            Some(bar) => {
                bar.set_length(c.targeted as u64);
                bar.set_position(c.answered as u64);
                bar.set_message(message(c, elapsed));
            }
            None => eprintln!("{}", self.text(c, elapsed)),
        }
    }

    /// Clears the bar, or writes the last plain line.
    pub fn finish(&mut self, c: Counts, elapsed: Duration) {
        match self.bar.take() {
            Some(bar) => bar.finish_and_clear(),
            None => eprintln!("{}", self.text(c, elapsed)),
        }
    }
}

fn message(c: Counts, elapsed: Duration) -> String {
    format!(
        "{} rows, {} errors, {:.1}/s",
        c.rows,
        c.errors,
        c.rate(elapsed)
    )
}

/// How one host's part in a hunt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Answered, without error.
    Answered,
    /// Answered with an error (the query failed or was refused).
    Failed,
    /// Its answer did not verify, or rows were lost or added on the way.
    Rejected,
    /// Its discovery queries found nothing, so the query did not run.
    Skipped,
    /// No answer.
    Silent,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Skipped => "skipped",
            Self::Silent => "silent",
        }
    }
}

/// One host's line of the full report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostOutcome {
    pub host_id: String,
    pub outcome: Outcome,
    /// Rows of this host's in the hunt's result.
    pub rows: u64,
    /// The error, the rejection, why it was skipped, or that it did not
    /// answer; None when it answered.
    pub reason: Option<String>,
}

impl HostOutcome {
    /// `{"host_id", "outcome", "rows", "reason"}` in that order: one NDJSON
    /// line of `sweep hunt --outcomes`.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("an outcome always serializes")
    }

    /// What follows `HOST: ` on the terminal.
    fn shown_reason(&self) -> String {
        let reason = self.reason.as_deref().unwrap_or_default();
        match self.outcome {
            Outcome::Skipped => format!("skipped: {reason}"),
            _ => reason.to_string(),
        }
    }
}

/// Hosts with the same outcome for the same reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub outcome: Outcome,
    /// As shown after `HOST: ` (`skipped: …` for skipped hosts).
    pub reason: String,
    /// Sorted.
    pub hosts: Vec<String>,
}

/// How much of the summary fits the terminal.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Lines for the groups, a closing "… more" line included.
    pub max_lines: usize,
    /// Host names shown in a group's line.
    pub names_per_group: usize,
    /// A group this small gets a `HOST: reason` line per host.
    pub per_host_upto: usize,
    /// Characters of a reason shown (the full text is in the report file).
    pub reason_width: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_lines: 20,
            names_per_group: 10,
            per_host_upto: 3,
            reason_width: 240,
        }
    }
}

/// Every host that did not simply answer, grouped by outcome and identical
/// reason; the largest groups first, then failed, rejected, skipped, silent.
pub fn groups(outcomes: &[HostOutcome]) -> Vec<Group> {
    let mut by: BTreeMap<(Outcome, String), Vec<String>> = BTreeMap::new();
    for o in outcomes.iter().filter(|o| o.outcome != Outcome::Answered) {
        by.entry((o.outcome, o.shown_reason()))
            .or_default()
            .push(o.host_id.clone());
    }
    let mut groups: Vec<Group> = by
        .into_iter()
        .map(|((outcome, reason), mut hosts)| {
            hosts.sort_by(|a, b| natural(a, b));
            Group {
                outcome,
                reason,
                hosts,
            }
        })
        .collect();
    groups.sort_by(|a, b| {
        b.hosts
            .len()
            .cmp(&a.hosts.len())
            .then(a.outcome.cmp(&b.outcome))
            .then_with(|| a.reason.cmp(&b.reason))
    });
    groups
}

/// Host ids in the order people count them: `web-2` before `web-10`.
pub fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> impl Iterator<Item = (bool, &str)> {
        let mut rest = s;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digits = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digits)
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(end);
            rest = tail;
            Some((digits, run))
        })
    }
    let (mut x, mut y) = (runs(a), runs(b));
    loop {
        let order = match (x.next(), y.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some((true, m)), Some((true, n))) => {
                let (m, n) = (m.trim_start_matches('0'), n.trim_start_matches('0'));
                m.len().cmp(&n.len()).then_with(|| m.cmp(n))
            }
            (Some((_, m)), Some((_, n))) => m.cmp(n),
        };
        if order.is_ne() {
            return order;
        }
    }
}

/// `a, b, c and 7 more`: at most `max` names, each made printable.
pub fn name_list(names: &[String], max: usize) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(max)
        .map(|n| printable(n).into_owned())
        .collect();
    let mut text = shown.join(", ");
    if names.len() > shown.len() {
        text.push_str(&format!(" and {} more", names.len() - shown.len()));
    }
    text
}

/// The groups as terminal lines, at most `limits.max_lines` of them: a
/// small group as `HOST: reason` lines, a larger one as
/// `reason: N host(s): a, b, … and M more`; groups that do not fit are
/// counted on a last line, which ends with `hint` (where the full list is).
/// Host ids and reasons come from agents, and are made printable.
pub fn summary_lines(groups: &[Group], limits: Limits, hint: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut shown = 0;
    for (i, g) in groups.iter().enumerate() {
        // Keep a line for the note on what is left, unless this is the last.
        let reserve = usize::from(i + 1 < groups.len());
        let room = limits
            .max_lines
            .saturating_sub(lines.len())
            .saturating_sub(reserve);
        if room == 0 {
            break;
        }
        let reason = render::truncate(&printable(&g.reason), limits.reason_width);
        if g.hosts.len() <= limits.per_host_upto && g.hosts.len() <= room {
            for h in &g.hosts {
                lines.push(format!("{}: {reason}", printable(h)));
            }
        } else {
            lines.push(format!(
                "{reason}: {} host(s): {}",
                g.hosts.len(),
                name_list(&g.hosts, limits.names_per_group)
            ));
        }
        shown += 1;
    }
    if shown < groups.len() {
        let rest = &groups[shown..];
        let hosts: usize = rest.iter().map(|g| g.hosts.len()).sum();
        lines.push(format!(
            "... and {} more group(s) of {hosts} host(s) not shown{hint}",
            rest.len()
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str, outcome: Outcome, reason: Option<&str>) -> HostOutcome {
        HostOutcome {
            host_id: id.into(),
            outcome,
            rows: 0,
            reason: reason.map(str::to_string),
        }
    }

    fn fleet() -> Vec<HostOutcome> {
        let mut hosts = Vec::new();
        for i in 0..812 {
            hosts.push(host(
                &format!("web-{i:04}"),
                Outcome::Silent,
                Some("did not answer within 30s"),
            ));
        }
        for i in 0..5000 {
            hosts.push(host(&format!("ok-{i}"), Outcome::Answered, None));
        }
        hosts.push(host(
            "db-1",
            Outcome::Rejected,
            Some("rejected answer: signature does not verify"),
        ));
        for i in 0..40 {
            hosts.push(host(
                &format!("db-{i:02}"),
                Outcome::Failed,
                Some("query stopped: wall time limit of 2s reached"),
            ));
        }
        hosts.push(host(
            "app-1",
            Outcome::Skipped,
            Some("discovery returned no rows"),
        ));
        hosts
    }

    #[test]
    fn hosts_are_grouped_by_outcome_and_reason_largest_first() {
        let g = groups(&fleet());
        assert_eq!(g.len(), 4, "{g:?}");
        assert_eq!(
            (g[0].outcome, g[0].hosts.len()),
            (Outcome::Silent, 812usize)
        );
        assert_eq!(g[1].outcome, Outcome::Failed);
        assert_eq!(g[1].hosts.len(), 40);
        // One host each: rejected before skipped.
        assert_eq!(g[2].outcome, Outcome::Rejected);
        assert_eq!(g[3].reason, "skipped: discovery returned no rows");
        let lines = summary_lines(&g, Limits::default(), "");
        assert_eq!(
            lines,
            [
                "did not answer within 30s: 812 host(s): web-0000, web-0001, web-0002, web-0003, \
                 web-0004, web-0005, web-0006, web-0007, web-0008, web-0009 and 802 more",
                "query stopped: wall time limit of 2s reached: 40 host(s): db-00, db-01, db-02, \
                 db-03, db-04, db-05, db-06, db-07, db-08, db-09 and 30 more",
                "db-1: rejected answer: signature does not verify",
                "app-1: skipped: discovery returned no rows",
            ]
        );
    }

    #[test]
    fn a_screenful_at_most_however_many_reasons() {
        // 10,000 hosts, each failing with its own text.
        let hosts: Vec<HostOutcome> = (0..10_000)
            .map(|i| {
                host(
                    &format!("h{i:05}"),
                    Outcome::Failed,
                    Some(&format!("error {i}")),
                )
            })
            .collect();
        let g = groups(&hosts);
        assert_eq!(g.len(), 10_000);
        let lines = summary_lines(&g, Limits::default(), " (see --outcomes)");
        assert_eq!(lines.len(), 20, "{lines:#?}");
        assert_eq!(lines[0], "h00000: error 0");
        assert_eq!(
            lines[19],
            "... and 9981 more group(s) of 9981 host(s) not shown (see --outcomes)"
        );
        // A group too big for its own lines takes one; a last group that
        // fits needs no closing note.
        let hosts: Vec<HostOutcome> = ["b", "a", "c", "d"]
            .iter()
            .map(|h| host(h, Outcome::Silent, Some("has not answered")))
            .collect();
        let lines = summary_lines(&groups(&hosts), Limits::default(), "");
        assert_eq!(lines, ["has not answered: 4 host(s): a, b, c, d"]);
        let limits = Limits {
            max_lines: 2,
            ..Limits::default()
        };
        let hosts: Vec<HostOutcome> = ["a", "b"]
            .iter()
            .map(|h| host(h, Outcome::Silent, Some("has not answered")))
            .chain([host("c", Outcome::Failed, Some("boom"))])
            .collect();
        let lines = summary_lines(&groups(&hosts), limits, "");
        assert_eq!(lines, ["has not answered: 2 host(s): a, b", "c: boom"]);
    }

    #[test]
    fn what_agents_send_is_shown_not_obeyed() {
        let hosts = [host("evil\x1b[2J", Outcome::Failed, Some("x\ny"))];
        let lines = summary_lines(&groups(&hosts), Limits::default(), "");
        assert_eq!(lines, ["evil\\e[2J: x\\ny"]);
        let long = "e".repeat(1000);
        let hosts = [host("h", Outcome::Failed, Some(&long))];
        let lines = summary_lines(&groups(&hosts), Limits::default(), "");
        assert_eq!(lines[0].chars().count(), "h: ".len() + 240);
        assert_eq!(
            name_list(&["a".into(), "b".into(), "c".into()], 2),
            "a, b and 1 more"
        );
        let json: serde_json::Value = serde_json::from_str(&hosts[0].to_line()).unwrap();
        assert_eq!(json["outcome"], "failed");
        assert_eq!(json["reason"].as_str().unwrap().len(), 1000);
        let mut ok = host("h", Outcome::Answered, None);
        ok.rows = 3;
        assert_eq!(
            ok.to_line(),
            r#"{"host_id":"h","outcome":"answered","rows":3,"reason":null}"#
        );
    }

    #[test]
    fn host_ids_sort_as_people_count() {
        let mut ids = [
            "web-10", "web-2", "db-1", "web-1", "web-02", "web", "10", "9",
        ];
        ids.sort_by(|a, b| natural(a, b));
        assert_eq!(
            ids,
            ["9", "10", "db-1", "web", "web-1", "web-02", "web-2", "web-10"]
        );
    }

    #[test]
    fn plain_progress_lines_say_where_the_hunt_stands() {
        let p = Progress::plain("abc");
        let c = Counts {
            answered: 50,
            targeted: 100,
            rows: 7,
            errors: 2,
        };
        assert_eq!(
            p.text(c, Duration::from_secs(10)),
            "hunt abc: 50/100 agents answered, 7 rows, 2 errors, 5.0/s, 10.0s"
        );
        assert_eq!(Counts::default().rate(Duration::ZERO), 0.0);
    }
}
