//! Rules tried only where they can be true. Most rules need some text in
//! some column ([`Matcher::needs`]): a command line holding `xmrig`, a path
//! starting `/tmp/`. Every such text of every rule on a column goes into one
//! Aho-Corasick automaton (ASCII case-insensitive, as `LIKE` is), so one
//! pass over a row's value finds every rule worth trying on it; the rest
//! are never evaluated. A rule without such a need is tried on every row
//! of the queries it watches.

use aho_corasick::AhoCorasick;
use rustc_hash::FxHashMap;

use crate::matcher::Matcher;
use crate::row::RowView;

#[derive(Debug, Default)]
pub struct Prefilter {
    /// Per column: its automaton, and the rules each pattern admits.
    columns: Vec<(usize, AhoCorasick, Vec<Vec<usize>>)>,
    /// Whether each rule waits for one of its texts.
    gated: Vec<bool>,
}

impl Prefilter {
    /// For the rules `candidates` says may be gated (by rule number), from
    /// their matchers' needs.
    pub fn new(
        matchers: &[Matcher],
        columns: &crate::matcher::Columns,
        candidate: impl Fn(usize) -> bool,
    ) -> Self {
        let mut gated = vec![false; matchers.len()];
        // Column -> lower-cased text -> the rules needing it.
        let mut by_column: FxHashMap<usize, FxHashMap<Box<str>, Vec<usize>>> = FxHashMap::default();
        for (i, m) in matchers.iter().enumerate() {
            if !candidate(i) {
                continue;
            }
            let Some(needs) = m.needs(columns) else {
                continue;
            };
            for (col, text) in needs {
                let rules = by_column
                    .entry(col)
                    .or_default()
                    .entry(text.to_ascii_lowercase().into())
                    .or_default();
                if rules.last() != Some(&i) {
                    rules.push(i);
                }
            }
            gated[i] = true;
        }
        let mut out = Vec::new();
        for (col, texts) in by_column {
            let (patterns, rules): (Vec<Box<str>>, Vec<Vec<usize>>) = texts.into_iter().unzip();
            match AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(patterns.iter().map(|p| p.as_bytes()))
            {
                Ok(ac) => out.push((col, ac, rules)),
                // Too large to build: these rules are tried on every row.
                Err(_) => rules.iter().flatten().for_each(|&i| gated[i] = false),
            }
        }
        out.sort_by_key(|(col, _, _)| *col);
        Self {
            columns: out,
            gated,
        }
    }

    /// Whether rule `i` is tried only where one of its texts occurs.
    pub fn gated(&self, i: usize) -> bool {
        self.gated.get(i).copied().unwrap_or(false)
    }

    /// Appends the gated rules among `member` one of whose texts the row
    /// holds (a rule may appear more than once).
    pub fn admit(&self, view: &RowView<'_>, member: &[bool], out: &mut Vec<usize>) {
        for (col, ac, rules) in &self.columns {
            if let Some(v) = view.get(*col) {
                for m in ac.find_overlapping_iter(v) {
                    out.extend(rules[m.pattern().as_usize()].iter().filter(|&&i| member[i]));
                }
            }
        }
    }
}
