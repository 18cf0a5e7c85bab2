//! Plain-text tables, the way osqueryi prints them; the agent's shell and the
//! controller print results alike.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` may not reach a terminal as it is: C0 and C1 controls (escape
/// sequences, carriage returns that overwrite a line, backspaces), DEL, and
/// the Unicode bidirectional overrides and isolates that reorder text.
fn is_hostile(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Text made safe for a terminal: every hostile character (see above) is
/// shown escaped (`\e`, `\n`, `\x07`, `\u{202e}`) instead of acting, so a
/// row from a compromised host cannot clear the operator's screen or forge
/// lines. A backslash is doubled only where it could be read as one of these.
/// JSON output does not need this: its encoder escapes controls itself.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hostile) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{1b}' => out.push_str("\\e"),
            c if (c as u32) < 0x100 && is_hostile(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_hostile(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// An ASCII table with a header; empty when there are no columns. Every cell
/// goes through [`printable`].
pub fn table(columns: &[String], rows: &[Vec<String>]) -> String {
    if columns.is_empty() {
        return String::new();
    }
    let columns: Vec<String> = columns.iter().map(|c| printable(c).into_owned()).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|v| printable(v).into_owned()).collect())
        .collect();
    let (columns, rows) = (&columns[..], &rows[..]);
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |v| v.chars().count()))
                .chain([c.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (v, w) in cells.zip(&widths) {
            let _ = write!(s, "| {v}{} ", " ".repeat(w - v.chars().count()));
        }
        s.push_str("|\n");
        s
    };
    let mut s = rule.clone();
    s.push_str(&line(&mut columns.iter().map(String::as_str)));
    s.push_str(&rule);
    for r in rows {
        s.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    if !rows.is_empty() {
        s.push_str(&rule);
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn hostile_text_is_shown_not_obeyed() {
        use super::printable;
        assert_eq!(printable("plain text, ünïcode"), "plain text, ünïcode");
        assert_eq!(
            printable("\u{1b}[2J\u{1b}[HAll clear"),
            "\\e[2J\\e[HAll clear"
        );
        assert_eq!(printable("a\rb\nc\td\u{7}"), "a\\rb\\nc\\td\\x07");
        assert_eq!(printable("\u{9b}31m"), "\\x9b31m", "C1 CSI");
        assert_eq!(printable("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        let t = super::table(&["x".into()], &[vec!["\u{1b}]0;owned\u{7}".into()]]);
        assert!(!t.contains('\u{1b}') && !t.contains('\u{7}'), "{t:?}");
        assert!(t.contains("\\e]0;owned\\x07"), "{t}");
    }

    #[test]
    fn aligns_columns() {
        let t = super::table(
            &["a".into(), "bb".into()],
            &[vec!["xyz".into(), "1".into()]],
        );
        assert_eq!(
            t,
            "+-----+----+\n| a   | bb |\n+-----+----+\n| xyz | 1  |\n+-----+----+\n"
        );
        assert_eq!(super::table(&[], &[]), "");
    }
}

/// Wildcard matching for SQL `LIKE` and shell-style `*` patterns: `many`
/// matches any run of characters, `one` (if any) exactly one; `fold_case`
/// compares ASCII letters case-insensitively, as SQLite's LIKE does.
///
/// Iterative, backtracking only to the last `many`: at worst
/// O(pattern × text), so a hostile pattern such as `%a%a%a%a%b` cannot stall
/// whoever evaluates it.
pub fn wildcard_match(
    pattern: &str,
    text: &str,
    many: char,
    one: Option<char>,
    fold_case: bool,
) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let same = |a: char, b: char| {
        if fold_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == many {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (Some(p[pi]) == one || same(p[pi], t[ti])) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            // Let the last `many` swallow one more character and retry.
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == many)
}

/// SQL `LIKE`: `%`, `_`, ASCII case-insensitive.
pub fn like(pattern: &str, text: &str) -> bool {
    wildcard_match(pattern, text, '%', Some('_'), true)
}

/// A `*` glob, case-sensitive, no single-character wildcard.
pub fn glob(pattern: &str, text: &str) -> bool {
    wildcard_match(pattern, text, '*', None, false)
}

#[cfg(test)]
mod wildcard_tests {
    use super::*;

    #[test]
    fn like_and_glob() {
        assert!(like("/etc/%", "/etc/passwd"));
        assert!(like("/ETC/pass_d", "/etc/passwd"));
        assert!(!like("/etc/%.conf", "/etc/passwd"));
        assert!(like("%", ""));
        assert!(like("%a%b%c", "xxaxxbxxc") && !like("%a%b%c", "xxaxxbxx"));
        assert!(glob("hunt:*", "hunt:abc") && glob("*", "") && !glob("a*c", "ab"));
        assert!(glob("pack_*_users", "pack_it_users") && !glob("Pack_*", "pack_x"));
        assert!(!glob("a_c", "abc"), "_ is literal in globs");
    }

    #[test]
    fn hostile_patterns_stay_fast() {
        let long = "a".repeat(20_000);
        let started = std::time::Instant::now();
        assert!(!like("%a%a%a%a%a%a%a%a%a%b", &long));
        // Generous bound: the point is polynomial, not exponential, time.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
