//! Conditions compiled for speed: column names resolved once per rule set to
//! slots in a [`RowView`], literals converted once (numbers parsed, texts
//! kept in both forms), `LIKE` patterns turned into prefix, suffix, infix
//! (Aho-Corasick, ASCII case-insensitive) or exact matchers, `IN` lists into
//! hash sets. Evaluation borrows the row's text and allocates only for
//! `lower()`/`upper()`/`trim()`. Semantics are [`crate::condition`]'s
//! (SQLite's three-valued logic, numbers compared as numbers, LIKE
//! case-insensitive for ASCII); a test checks the two agree on generated rows.

use std::borrow::Cow;
use std::cmp::Ordering;

use aho_corasick::AhoCorasick;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::condition::{Cmp, Node, Operand};
use crate::row::RowView;

/// Column names to slots, shared by every rule of a set, and the `LIKE
/// '%…%'` patterns of every rule on each column, searched for together: one
/// Aho-Corasick pass over a row's value answers every such rule.
#[derive(Debug, Default, Clone)]
pub struct Columns {
    /// By the name's bytes: a row's keys are looked up as read.
    ids: FxHashMap<Box<[u8]>, usize>,
    /// By name length (under 32): a bit per first byte (mod 64) of the
    /// names of that length. Most of a row's names are no rule's column;
    /// this answers them without hashing.
    shapes: [u64; 32],
    /// Per column: the infix patterns (lower-cased), and their automaton.
    infixes: FxHashMap<usize, Vec<Box<str>>>,
    /// By column, in column order: a row view keeps what each found.
    automata: Vec<(usize, AhoCorasick)>,
}

impl Columns {
    pub fn id(&mut self, name: &str) -> usize {
        if let (Some(mask), Some(first)) = (self.shapes.get_mut(name.len()), name.bytes().next()) {
            *mask |= 1 << (first % 64);
        }
        let next = self.ids.len();
        *self.ids.entry(name.as_bytes().into()).or_insert(next)
    }

    /// The slot of a column name as a row's bytes spell it.
    pub fn get_bytes(&self, name: &[u8]) -> Option<usize> {
        if let (Some(mask), Some(first)) = (self.shapes.get(name.len()), name.first()) {
            if mask & (1 << (first % 64)) == 0 {
                return None;
            }
        }
        self.ids.get(name).copied()
    }

    /// The number of `pattern` among column `col`'s infix patterns.
    fn infix(&mut self, col: usize, pattern: &str) -> usize {
        let list = self.infixes.entry(col).or_default();
        let lower = pattern.to_ascii_lowercase();
        match list.iter().position(|p| **p == *lower) {
            Some(i) => i,
            None => {
                list.push(lower.into());
                list.len() - 1
            }
        }
    }

    /// Builds the shared automata; after the last rule is compiled.
    pub fn finish(&mut self) {
        self.automata = self
            .infixes
            .iter()
            .filter_map(|(col, patterns)| {
                let ac = AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(patterns.iter().map(|p| p.as_bytes()))
                    .ok()?;
                Some((*col, ac))
            })
            .collect();
        self.automata.sort_by_key(|(col, _)| *col);
    }

    /// How many columns have infix patterns.
    pub(crate) fn infix_columns(&self) -> usize {
        self.automata.len()
    }

    /// Which of the columns with infix patterns `col` is.
    pub(crate) fn infix_column(&self, col: usize) -> Option<usize> {
        self.automata.iter().position(|(c, _)| *c == col)
    }

    /// Which of the `at`th infix column's patterns occur in `text`.
    pub(crate) fn infixes_in(&self, at: usize, text: &str) -> Box<[bool]> {
        let Some((col, ac)) = self.automata.get(at) else {
            return Box::default();
        };
        let n = self.infixes.get(col).map_or(0, Vec::len);
        let mut found = vec![false; n].into_boxed_slice();
        for m in ac.find_overlapping_iter(text) {
            found[m.pattern().as_usize()] = true;
        }
        found
    }

    pub fn get(&self, name: &str) -> Option<usize> {
        self.get_bytes(name.as_bytes())
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A literal in both forms a comparison may need.
#[derive(Debug, Clone)]
struct Lit {
    text: Box<str>,
    num: Option<f64>,
}

impl Lit {
    fn of(v: &Val<'_>) -> Option<Self> {
        Some(Self {
            text: v.as_text()?.into(),
            num: v.as_num(),
        })
    }
}

#[derive(Debug, Clone)]
enum Op {
    Column(usize),
    Const(Val<'static>),
    Lower(Box<Op>),
    Upper(Box<Op>),
    Length(Box<Op>),
    Trim(Box<Op>),
}

/// A LIKE pattern without `_`, by where its `%`s are.
#[derive(Debug, Clone)]
enum Like {
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    Infix(AhoCorasick),
    Any,
    /// Anything else: SQLite's matching, via [`sweep_proto::text::like`].
    General(Box<str>),
}

impl Like {
    fn compile(pattern: &str) -> Self {
        if pattern.contains('_') {
            return Self::General(pattern.into());
        }
        let parts: Vec<&str> = pattern.split('%').collect();
        match parts.as_slice() {
            [exact] => Self::Exact((*exact).into()),
            [p, ""] => Self::Prefix((*p).into()),
            ["", s] => Self::Suffix((*s).into()),
            ["", "", ""] => Self::Any,
            ["", infix, ""] => AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build([*infix])
                .map(Self::Infix)
                .unwrap_or_else(|_| Self::General(pattern.into())),
            _ if parts.iter().all(|p| p.is_empty()) => Self::Any,
            _ => Self::General(pattern.into()),
        }
    }

    /// The longest run of literal text a value must hold to match.
    fn literal(&self) -> Option<Box<str>> {
        match self {
            Self::Exact(t) | Self::Prefix(t) | Self::Suffix(t) => Some(t.clone()),
            Self::General(p) => p.split(['%', '_']).max_by_key(|s| s.len()).map(Box::from),
            Self::Infix(_) | Self::Any => None,
        }
    }

    fn matches(&self, text: &str) -> bool {
        let t = text.as_bytes();
        match self {
            Self::Exact(e) => t.eq_ignore_ascii_case(e.as_bytes()),
            Self::Prefix(p) => {
                t.len() >= p.len() && t[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            }
            Self::Suffix(s) => {
                t.len() >= s.len() && t[t.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
            Self::Infix(ac) => ac.is_match(text),
            Self::Any => true,
            Self::General(p) => sweep_proto::text::like(p, text),
        }
    }
}

#[derive(Debug, Clone)]
enum M {
    And(Box<M>, Box<M>),
    Or(Box<M>, Box<M>),
    Not(Box<M>),
    /// `column <cmp> literal` (either side), the common case.
    CmpLit {
        col: usize,
        cmp: Cmp,
        lit: Lit,
    },
    Cmp(Op, Cmp, Op),
    LikeLit {
        op: Op,
        like: Like,
        negated: bool,
    },
    /// `column LIKE '%text%'`: pattern `id` of the column's shared automaton.
    Infix {
        col: usize,
        id: usize,
        negated: bool,
    },
    Like {
        op: Op,
        pattern: Op,
        negated: bool,
    },
    InLit {
        op: Op,
        nums: Vec<f64>,
        texts: FxHashSet<Box<str>>,
        has_null: bool,
        negated: bool,
    },
    In {
        op: Op,
        list: Vec<Op>,
        negated: bool,
    },
    Between {
        op: Op,
        low: Op,
        high: Op,
        negated: bool,
    },
    IsNull {
        op: Op,
        negated: bool,
    },
    Truthy(Op),
}

/// A condition bound to a rule set's columns.
#[derive(Debug, Clone)]
pub struct Matcher {
    root: M,
}

impl Matcher {
    pub fn compile(node: &Node, columns: &mut Columns) -> Self {
        Self {
            root: compile(node, columns),
        }
    }

    /// Whether the row satisfies the condition (true, not unknown).
    pub fn matches(&self, row: &RowView<'_>) -> bool {
        eval(&self.root, row) == Some(true)
    }

    /// A column and the texts one of which it must hold for the condition
    /// to be true: an `=` or `IN` on non-numeric texts among the
    /// condition's top-level `AND`s. Such a comparison is exact text
    /// equality, so a rule set can index rules by it and skip those whose
    /// value a row does not hold.
    pub fn required(&self) -> Option<(usize, Vec<Box<str>>)> {
        fn find(m: &M) -> Option<(usize, Vec<Box<str>>)> {
            match m {
                M::And(a, b) => find(a).or_else(|| find(b)),
                M::CmpLit {
                    col,
                    cmp: Cmp::Eq,
                    lit,
                } if lit.num.is_none() => Some((*col, vec![lit.text.clone()])),
                M::InLit {
                    op: Op::Column(col),
                    nums,
                    texts,
                    has_null: false,
                    negated: false,
                } if nums.is_empty() && !texts.is_empty() => {
                    Some((*col, texts.iter().cloned().collect()))
                }
                _ => None,
            }
        }
        find(&self.root)
    }
}

impl Matcher {
    /// Texts one of which must occur in a column's value (ASCII case
    /// aside) for the condition to be true; None when no such list is
    /// known (a number compared, a `NOT`, a function of a column). A rule
    /// set tries the rule only on rows where one occurs
    /// ([`crate::prefilter`]). A text `=`, a `LIKE` pattern's longest
    /// literal run and a text `IN` list each need their text; an `AND`
    /// needs what either side needs (the side with the longer texts), an
    /// `OR` what both do.
    pub fn needs(&self, columns: &Columns) -> Option<Vec<(usize, Box<str>)>> {
        needs(&self.root, columns)
    }
}

fn needs(m: &M, columns: &Columns) -> Option<Vec<(usize, Box<str>)>> {
    let shortest = |v: &[(usize, Box<str>)]| v.iter().map(|(_, t)| t.len()).min().unwrap_or(0);
    let needs = match m {
        M::And(a, b) => match (needs(a, columns), needs(b, columns)) {
            (Some(x), Some(y)) => Some(if shortest(&x) >= shortest(&y) { x } else { y }),
            (x, y) => x.or(y),
        },
        M::Or(a, b) => {
            let mut x = needs(a, columns)?;
            x.extend(needs(b, columns)?);
            Some(x)
        }
        M::CmpLit {
            col,
            cmp: Cmp::Eq,
            lit,
        } if lit.num.is_none() => Some(vec![(*col, lit.text.clone())]),
        M::LikeLit {
            op: Op::Column(col),
            like,
            negated: false,
        } => like.literal().map(|t| vec![(*col, t)]),
        M::Infix {
            col,
            id,
            negated: false,
        } => Some(vec![(*col, columns.infixes.get(col)?.get(*id)?.clone())]),
        M::InLit {
            op: Op::Column(col),
            nums,
            texts,
            negated: false,
            ..
        } if nums.is_empty() && !texts.is_empty() => {
            Some(texts.iter().map(|t| (*col, t.clone())).collect())
        }
        _ => None,
    }?;
    // An empty text occurs in every value: no help.
    needs.iter().all(|(_, t)| !t.is_empty()).then_some(needs)
}

fn op(o: &Operand, columns: &mut Columns) -> Op {
    match o {
        Operand::Column(c) => Op::Column(columns.id(c)),
        Operand::Text(t) => Op::Const(Val::Text(Cow::Owned(t.clone()))),
        Operand::Number(n) => Op::Const(Val::Num(*n)),
        Operand::Null => Op::Const(Val::Null),
        Operand::Lower(a) => Op::Lower(Box::new(op(a, columns))),
        Operand::Upper(a) => Op::Upper(Box::new(op(a, columns))),
        Operand::Length(a) => Op::Length(Box::new(op(a, columns))),
        Operand::Trim(a) => Op::Trim(Box::new(op(a, columns))),
    }
}

fn flip(c: Cmp) -> Cmp {
    match c {
        Cmp::Lt => Cmp::Gt,
        Cmp::Le => Cmp::Ge,
        Cmp::Gt => Cmp::Lt,
        Cmp::Ge => Cmp::Le,
        same => same,
    }
}

fn compile(n: &Node, columns: &mut Columns) -> M {
    let b = |n: &Node, columns: &mut Columns| Box::new(compile(n, columns));
    match n {
        Node::And(a, c) => M::And(b(a, columns), b(c, columns)),
        Node::Or(a, c) => M::Or(b(a, columns), b(c, columns)),
        Node::Not(a) => M::Not(b(a, columns)),
        Node::Compare(l, cmp, r) => match (op(l, columns), op(r, columns)) {
            (Op::Column(col), Op::Const(v)) => match Lit::of(&v) {
                Some(lit) => M::CmpLit {
                    col,
                    cmp: *cmp,
                    lit,
                },
                None => M::Cmp(Op::Column(col), *cmp, Op::Const(v)),
            },
            (Op::Const(v), Op::Column(col)) => match Lit::of(&v) {
                Some(lit) => M::CmpLit {
                    col,
                    cmp: flip(*cmp),
                    lit,
                },
                None => M::Cmp(Op::Const(v), *cmp, Op::Column(col)),
            },
            (l, r) => M::Cmp(l, *cmp, r),
        },
        Node::Like {
            operand,
            pattern,
            negated,
        } => {
            let o = op(operand, columns);
            match op(pattern, columns) {
                Op::Const(v) if v.as_text().is_some() => {
                    let like = Like::compile(&v.as_text().unwrap_or_default());
                    match (o, like) {
                        (Op::Column(col), Like::Infix(_)) => {
                            let text = v.as_text().unwrap_or_default();
                            let id = columns.infix(col, text.trim_matches('%'));
                            M::Infix {
                                col,
                                id,
                                negated: *negated,
                            }
                        }
                        (o, like) => M::LikeLit {
                            op: o,
                            like,
                            negated: *negated,
                        },
                    }
                }
                pattern => M::Like {
                    op: o,
                    pattern,
                    negated: *negated,
                },
            }
        }
        Node::In {
            operand,
            list,
            negated,
        } => {
            let o = op(operand, columns);
            let items: Vec<Op> = list.iter().map(|i| op(i, columns)).collect();
            if items.iter().all(|i| matches!(i, Op::Const(_))) {
                let (mut nums, mut texts, mut has_null) = (Vec::new(), FxHashSet::default(), false);
                for i in &items {
                    let Op::Const(v) = i else { continue };
                    match (v.as_num(), v.as_text()) {
                        (_, None) => has_null = true,
                        (Some(n), _) => nums.push(n),
                        (None, Some(t)) => {
                            texts.insert(t.into());
                        }
                    }
                }
                M::InLit {
                    op: o,
                    nums,
                    texts,
                    has_null,
                    negated: *negated,
                }
            } else {
                M::In {
                    op: o,
                    list: items,
                    negated: *negated,
                }
            }
        }
        Node::Between {
            operand,
            low,
            high,
            negated,
        } => M::Between {
            op: op(operand, columns),
            low: op(low, columns),
            high: op(high, columns),
            negated: *negated,
        },
        Node::IsNull { operand, negated } => M::IsNull {
            op: op(operand, columns),
            negated: *negated,
        },
        Node::Truthy(o) => M::Truthy(op(o, columns)),
    }
}

/// A value during evaluation: NULL, text (borrowed from the row when it
/// can be), or a number.
#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    Null,
    Text(Cow<'a, str>),
    Num(f64),
}

pub(crate) fn parse_num(t: &str) -> Option<f64> {
    // Most numeric columns are plain integers: up to 15 digits are exact in
    // an f64, and this is what the general parse would give, faster.
    let b = t.as_bytes();
    if (1..=15).contains(&b.len()) && b.iter().all(u8::is_ascii_digit) {
        return Some(b.iter().fold(0u64, |v, d| v * 10 + u64::from(d - b'0')) as f64);
    }
    t.trim().parse().ok()
}

impl Val<'_> {
    fn as_num(&self) -> Option<f64> {
        match self {
            Val::Num(n) => Some(*n),
            Val::Text(t) => parse_num(t),
            Val::Null => None,
        }
    }

    fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Val::Null => None,
            Val::Text(t) => Some(Cow::Borrowed(t)),
            Val::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => {
                Some(Cow::Owned(format!("{}", *n as i64)))
            }
            Val::Num(n) => Some(Cow::Owned(n.to_string())),
        }
    }
}

fn value<'a>(o: &'a Op, row: &'a RowView<'_>) -> Val<'a> {
    match o {
        Op::Column(c) => match row.get(*c) {
            Some(v) => Val::Text(Cow::Borrowed(v)),
            None => Val::Null,
        },
        Op::Const(v) => match v {
            Val::Text(t) => Val::Text(Cow::Borrowed(t)),
            Val::Num(n) => Val::Num(*n),
            Val::Null => Val::Null,
        },
        Op::Lower(a) => map_text(value(a, row), |t| t.to_lowercase()),
        Op::Upper(a) => map_text(value(a, row), |t| t.to_uppercase()),
        Op::Trim(a) => map_text(value(a, row), |t| t.trim().to_string()),
        Op::Length(a) => match value(a, row).as_text() {
            Some(t) => Val::Num(t.chars().count() as f64),
            None => Val::Null,
        },
    }
}

fn map_text<'a>(v: Val<'_>, f: impl Fn(&str) -> String) -> Val<'a> {
    match v.as_text() {
        Some(t) => Val::Text(Cow::Owned(f(&t))),
        None => Val::Null,
    }
}

fn compare(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    if matches!(a, Val::Null) || matches!(b, Val::Null) {
        return None;
    }
    match (a.as_num(), b.as_num()) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => Some(a.as_text()?.as_ref().cmp(b.as_text()?.as_ref())),
    }
}

fn holds(cmp: Cmp, ord: Ordering) -> bool {
    use Ordering::*;
    match cmp {
        Cmp::Eq => ord == Equal,
        Cmp::Ne => ord != Equal,
        Cmp::Lt => ord == Less,
        Cmp::Le => ord != Greater,
        Cmp::Gt => ord == Greater,
        Cmp::Ge => ord != Less,
    }
}

fn eval(m: &M, row: &RowView<'_>) -> Option<bool> {
    use Ordering::*;
    match m {
        // Three-valued AND/OR: false (true) on one side decides.
        M::And(a, b) => match eval(a, row) {
            Some(false) => Some(false),
            left => match (left, eval(b, row)) {
                (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
        },
        M::Or(a, b) => match eval(a, row) {
            Some(true) => Some(true),
            left => match (left, eval(b, row)) {
                (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
        },
        M::Not(a) => eval(a, row).map(|v| !v),
        M::Infix { col, id, negated } => {
            let found = row.infixes(*col)?;
            Some(found.get(*id).copied().unwrap_or(false) != *negated)
        }
        M::CmpLit { col, cmp, lit } => {
            let v = row.get(*col)?;
            let ord = match (lit.num, row.num(*col)) {
                (Some(l), Some(x)) => x.partial_cmp(&l)?,
                _ => v.cmp(&lit.text),
            };
            Some(holds(*cmp, ord))
        }
        M::Cmp(a, cmp, b) => Some(holds(*cmp, compare(&value(a, row), &value(b, row))?)),
        M::LikeLit { op, like, negated } => {
            // A column's text as it is, without going through a value.
            if let Op::Column(c) = op {
                return Some(like.matches(row.get(*c)?) != *negated);
            }
            let v = value(op, row);
            let text = v.as_text()?;
            Some(like.matches(&text) != *negated)
        }
        M::Like {
            op,
            pattern,
            negated,
        } => {
            let (v, p) = (value(op, row), value(pattern, row));
            let (text, pat) = (v.as_text()?, p.as_text()?);
            Some(sweep_proto::text::like(&pat, &text) != *negated)
        }
        M::InLit {
            op,
            nums,
            texts,
            has_null,
            negated,
        } => {
            let v = value(op, row);
            let num = match op {
                Op::Column(c) => row.num(*c),
                _ => v.as_num(),
            };
            // NaN ("nan" is a number to Rust's parser) compares as unknown.
            let (found, unknown) = match num {
                _ if matches!(v, Val::Null) => return None,
                Some(n) if n.is_nan() => (false, !nums.is_empty()),
                Some(n) => (nums.contains(&n), nums.iter().any(|m| m.is_nan())),
                None => match &v {
                    Val::Text(t) => (texts.contains(t.as_ref()), false),
                    _ => (texts.contains(v.as_text()?.as_ref()), false),
                },
            };
            if found {
                Some(!*negated)
            } else if *has_null || unknown {
                None
            } else {
                Some(*negated)
            }
        }
        M::In { op, list, negated } => {
            let v = value(op, row);
            if matches!(v, Val::Null) {
                return None;
            }
            let mut unknown = false;
            for item in list {
                match compare(&v, &value(item, row)) {
                    Some(Equal) => return Some(!*negated),
                    None => unknown = true,
                    _ => {}
                }
            }
            if unknown {
                None
            } else {
                Some(*negated)
            }
        }
        M::Between {
            op,
            low,
            high,
            negated,
        } => {
            let v = value(op, row);
            let lo = compare(&v, &value(low, row))?;
            let hi = compare(&v, &value(high, row))?;
            Some((lo != Less && hi != Greater) != *negated)
        }
        M::IsNull { op, negated } => Some(matches!(value(op, row), Val::Null) != *negated),
        M::Truthy(o) => match value(o, row) {
            Val::Null => None,
            v => Some(v.as_num().is_some_and(|n| n != 0.0)),
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::condition::Condition;

    /// A small deterministic generator (no test may depend on luck).
    pub(crate) struct Lcg(pub(crate) u64);

    impl Lcg {
        pub(crate) fn next(&mut self) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) as usize
        }

        pub(crate) fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.next() % from.len()]
        }
    }

    pub(crate) const COLUMNS: &[&str] =
        &["name", "path", "uid", "remote_port", "cmdline", "missing"];
    pub(crate) const VALUES: &[&str] = &[
        "",
        "bash",
        "BASH",
        "sh",
        "/tmp/x",
        "/TMP/xmrig",
        "/usr/bin/bash",
        "0",
        "00",
        "1",
        "443",
        "-1",
        "1.5",
        " 7 ",
        "nan",
        "inf",
        "a%b",
        "x_y",
        "stratum+tcp://pool",
        "é",
    ];
    const LITERALS: &[&str] = &[
        "'bash'",
        "'BASH'",
        "'/tmp/%'",
        "'%/bash'",
        "'%xmrig%'",
        "'%'",
        "'%%'",
        "'b_sh'",
        "'/usr/%/bash'",
        "0",
        "1",
        "443",
        "-1",
        "1.5",
        "'0'",
        "'00'",
        "NULL",
        "'nan'",
        "'é'",
        "'%a%b%'",
        "'x_y'",
        "''",
    ];

    fn operand(g: &mut Lcg) -> String {
        match g.next() % 6 {
            0 => format!("lower({})", g.pick(COLUMNS)),
            1 => format!("length({})", g.pick(COLUMNS)),
            2 => g.pick(LITERALS).to_string(),
            _ => g.pick(COLUMNS).to_string(),
        }
    }

    pub(crate) fn condition(g: &mut Lcg, depth: usize) -> String {
        let choice = if depth > 2 {
            g.next() % 6
        } else {
            g.next() % 9
        };
        let col = g.pick(COLUMNS);
        let lit = g.pick(LITERALS);
        match choice {
            0 => format!("{col} {} {lit}", g.pick(&["=", "<>", "<", "<=", ">", ">="])),
            1 => format!(
                "{} {} {}",
                operand(g),
                g.pick(&["=", "!=", ">"]),
                operand(g)
            ),
            2 => format!("{col} {}LIKE {lit}", g.pick(&["", "NOT "])),
            3 => format!(
                "{} {}IN ({}, {}, {})",
                operand(g),
                g.pick(&["", "NOT "]),
                g.pick(LITERALS),
                g.pick(LITERALS),
                g.pick(LITERALS)
            ),
            4 => format!("{col} IS {}NULL", g.pick(&["", "NOT "])),
            5 => format!(
                "{col} {}BETWEEN {lit} AND {}",
                g.pick(&["", "NOT "]),
                g.pick(LITERALS)
            ),
            6 => format!(
                "({}) AND ({})",
                condition(g, depth + 1),
                condition(g, depth + 1)
            ),
            7 => format!(
                "({}) OR ({})",
                condition(g, depth + 1),
                condition(g, depth + 1)
            ),
            _ => format!("NOT ({})", condition(g, depth + 1)),
        }
    }

    /// The compiled matcher decides exactly as the reference evaluator on
    /// 20,000 generated conditions, each over 20 generated rows; and where
    /// the reference says true, the row holds a text the condition needs.
    #[test]
    fn agrees_with_the_reference_evaluator() {
        let mut g = Lcg(7);
        let (mut compared, mut needed) = (0, 0);
        for _ in 0..20_000 {
            let text = condition(&mut g, 0);
            let Ok(cond) = Condition::compile(&text) else {
                continue;
            };
            let mut columns = Columns::default();
            let matcher = Matcher::compile(cond.root(), &mut columns);
            columns.finish();
            let needs = matcher.needs(&columns);
            for _ in 0..20 {
                let row: BTreeMap<String, String> = COLUMNS
                    .iter()
                    .filter(|c| **c != "missing")
                    .map(|c| (c.to_string(), g.pick(VALUES).to_string()))
                    .collect();
                let json = serde_json::to_string(&row).unwrap();
                let view = RowView::new(&columns, &json).unwrap();
                let truth = cond.matches(&row);
                assert_eq!(matcher.matches(&view), truth, "{text} on {row:?}");
                compared += 1;
                // What the prefilter relies on: a true condition's row holds
                // one of the texts it needs.
                if let (true, Some(needs)) = (truth, &needs) {
                    let holds = needs.iter().any(|(col, t)| {
                        view.get(*col).is_some_and(|v| {
                            v.to_ascii_lowercase().contains(&t.to_ascii_lowercase())
                        })
                    });
                    assert!(holds, "{text} on {row:?} needs one of {needs:?}");
                    needed += 1;
                }
            }
        }
        assert!(compared > 300_000, "{compared}");
        assert!(needed > 1_000, "only {needed} true rows had needs");
    }
}
