//! osquery's SQL functions, with osquery's names, argument orders, 0-based
//! indexes and NULL behaviour (osquery registers them in
//! `osquery/sql/sqlite_*.cpp`): `split`, `regex_split`, `regex_match`,
//! `inet_aton`, `to_base64`, `from_base64`, `conditional_to_base64`, `md5`,
//! `sha1`, `sha256`, `regexp` (SQLite's `X REGEXP Y`), `community_id_v1`
//! ([`community_id`]) and the math functions ([`math`]). Every one reads
//! only its arguments. Regular expressions
//! are Rust's `regex` (linear time, no back-references), with osquery's
//! 256-byte cap on a pattern and a bound on its compiled size, so a hostile
//! pattern can't stall an agent.

use base64::Engine as _;
use md5::Md5;
use regex::{Regex, RegexBuilder};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Error, Result};
use sha1::Sha1;
use sha2::{Digest, Sha256};

pub mod community_id;
pub mod math;

/// The names this module registers, for the guard's list.
pub const NAMES: &[&str] = &[
    "split",
    "regex_split",
    "regex_match",
    "inet_aton",
    "to_base64",
    "from_base64",
    "conditional_to_base64",
    "md5",
    "sha1",
    "sha256",
    "regexp",
];

/// osquery's `regex_max_size`.
const MAX_PATTERN_BYTES: usize = 256;
/// The compiled program's bound (the `regex` crate's unit: bytes).
const MAX_COMPILED_BYTES: usize = 1 << 20;

pub fn register(conn: &Connection) -> Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("split", 3, flags, |ctx| {
        split_by(ctx, |input, tokens| {
            Ok(input
                .split(|c| tokens.contains(c))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect())
        })
    })?;
    conn.create_scalar_function("regex_split", 3, flags, |ctx| {
        split_by(ctx, |input, pattern| {
            Ok(regex(pattern)?.split(input).map(str::to_string).collect())
        })
    })?;
    conn.create_scalar_function("regex_match", 3, flags, |ctx| {
        let (Some(input), Some(pattern), Some(index)) =
            (text(ctx, 0)?, text(ctx, 1)?, int(ctx, 2)?)
        else {
            return Ok(None);
        };
        let re = regex(&pattern)?;
        let Ok(index) = usize::try_from(index) else {
            return Ok(None);
        };
        Ok(re
            .captures(&input)
            .and_then(|c| c.get(index))
            .map(|m| m.as_str().to_string()))
    })?;
    // `text REGEXP pattern` calls regexp(pattern, text): whether the pattern
    // matches anywhere in the text. The compiled pattern is kept for the
    // statement, not rebuilt per row.
    conn.create_scalar_function("regexp", 2, flags, |ctx| {
        if matches!(ctx.get_raw(0), ValueRef::Null) {
            return Ok(None);
        }
        let re = ctx.get_or_create_aux(0, |v| -> Result<Regex> {
            regex(&String::from_utf8_lossy(v.as_bytes().unwrap_or_default()))
        })?;
        Ok(text(ctx, 1)?.map(|t| re.is_match(&t)))
    })?;
    conn.create_scalar_function("inet_aton", 1, flags, |ctx| {
        Ok(text(ctx, 0)?
            .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok())
            .map(|ip| i64::from(u32::from(ip))))
    })?;
    conn.create_scalar_function("to_base64", 1, flags, |ctx| {
        Ok(bytes(ctx, 0)?.map(|b| base64::engine::general_purpose::STANDARD.encode(b)))
    })?;
    conn.create_scalar_function("from_base64", 1, flags, |ctx| {
        Ok(text(ctx, 0)?.and_then(|t| {
            base64::engine::general_purpose::STANDARD
                .decode(t.trim())
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        }))
    })?;
    conn.create_scalar_function("conditional_to_base64", 1, flags, |ctx| {
        Ok(bytes(ctx, 0)?.map(|b| {
            if b.iter().all(|c| (0x20..0x7f).contains(c)) {
                String::from_utf8_lossy(&b).into_owned()
            } else {
                base64::engine::general_purpose::STANDARD.encode(b)
            }
        }))
    })?;
    conn.create_scalar_function("md5", 1, flags, digest::<Md5>)?;
    conn.create_scalar_function("sha1", 1, flags, digest::<Sha1>)?;
    conn.create_scalar_function("sha256", 1, flags, digest::<Sha256>)?;
    community_id::register(conn)?;
    math::register(conn)?;
    Ok(())
}

/// `f(input, tokens)`'s piece at the 0-based index; NULL when an argument
/// is NULL or the index is past the end; an error for empty tokens.
fn split_by(
    ctx: &Context<'_>,
    f: impl Fn(&str, &str) -> Result<Vec<String>>,
) -> Result<Option<String>> {
    let (Some(input), Some(tokens), Some(index)) = (text(ctx, 0)?, text(ctx, 1)?, int(ctx, 2)?)
    else {
        return Ok(None);
    };
    if tokens.is_empty() {
        return Err(Error::UserFunctionError(
            "Invalid input to split function".into(),
        ));
    }
    let Ok(index) = usize::try_from(index) else {
        return Ok(None);
    };
    Ok(f(&input, &tokens)?.into_iter().nth(index))
}

fn regex(pattern: &str) -> Result<Regex> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(Error::UserFunctionError(
            format!("regex longer than {MAX_PATTERN_BYTES} bytes").into(),
        ));
    }
    RegexBuilder::new(pattern)
        .size_limit(MAX_COMPILED_BYTES)
        .build()
        .map_err(|e| Error::UserFunctionError(format!("invalid regex: {e}").into()))
}

fn digest<D: Digest>(ctx: &Context<'_>) -> Result<Option<String>> {
    Ok(bytes(ctx, 0)?.map(|b| hex::encode(D::digest(&b))))
}

/// Argument `i` as text (numbers as SQLite prints them); None for NULL.
fn text(ctx: &Context<'_>, i: usize) -> Result<Option<String>> {
    Ok(bytes(ctx, i)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

fn bytes(ctx: &Context<'_>, i: usize) -> Result<Option<Vec<u8>>> {
    Ok(match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(t.to_vec()),
        ValueRef::Integer(n) => Some(n.to_string().into_bytes()),
        // As SQLite prints a whole real: with its ".0".
        ValueRef::Real(r) if r.fract() == 0.0 && r.abs() < 1e15 => {
            Some(format!("{r:.1}").into_bytes())
        }
        ValueRef::Real(r) => Some(r.to_string().into_bytes()),
    })
}

fn int(ctx: &Context<'_>, i: usize) -> Result<Option<i64>> {
    Ok(match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n),
        ValueRef::Real(r) => Some(r as i64),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|t| t.trim().parse().ok()),
        ValueRef::Blob(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use super::*;

    fn one(sql: &str) -> Value {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    fn t(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn split_is_osqueries() {
        // osquery's documented examples.
        assert_eq!(one("SELECT split('192.168.0.1', '.', 1)"), t("168"));
        assert_eq!(one("SELECT split('192.168.0.1', '.0', 0)"), t("192"));
        // Empty pieces are dropped and pieces trimmed; past the end is NULL.
        assert_eq!(one("SELECT split('a,, b ,c', ',', 1)"), t("b"));
        assert_eq!(one("SELECT split('a,b', ',', 5)"), Value::Null);
        assert_eq!(one("SELECT split(NULL, ',', 0)"), Value::Null);
        assert_eq!(
            one("SELECT regex_split('192.168.0.1', '\\.0', 0)"),
            t("192.168")
        );
        assert_eq!(one("SELECT regex_split('a1b22c', '[0-9]+', 2)"), t("c"));
    }

    #[test]
    fn regex_match_returns_the_group_asked_for() {
        assert_eq!(
            one("SELECT regex_match('user=alice uid=1000', 'uid=([0-9]+)', 1)"),
            t("1000")
        );
        assert_eq!(
            one("SELECT regex_match('user=alice uid=1000', 'uid=([0-9]+)', 0)"),
            t("uid=1000")
        );
        assert_eq!(one("SELECT regex_match('abc', 'x', 0)"), Value::Null);
        assert_eq!(one("SELECT 'abc' REGEXP 'b.$'"), Value::Integer(1));
        assert_eq!(one("SELECT 'abc' REGEXP '^b'"), Value::Integer(0));
        assert_eq!(one("SELECT NULL REGEXP 'b'"), Value::Null);
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        let long = "a".repeat(300);
        let err = conn
            .query_row(&format!("SELECT regex_match('a', '{long}', 0)"), [], |r| {
                r.get::<_, Value>(0)
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("longer than 256"), "{err}");
    }

    #[test]
    fn encodings_and_digests_match_independent_values() {
        // RFC 1321, FIPS 180 test vectors for "abc".
        assert_eq!(
            one("SELECT md5('abc')"),
            t("900150983cd24fb0d6963f7d28e17f72")
        );
        assert_eq!(
            one("SELECT sha1('abc')"),
            t("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(
            one("SELECT sha256('abc')"),
            t("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        // RFC 4648 section 10.
        assert_eq!(one("SELECT to_base64('foobar')"), t("Zm9vYmFy"));
        assert_eq!(one("SELECT from_base64('Zm9vYg==')"), t("foob"));
        assert_eq!(one("SELECT from_base64('not base64!')"), Value::Null);
        assert_eq!(one("SELECT conditional_to_base64('plain')"), t("plain"));
        assert_eq!(
            one("SELECT conditional_to_base64(char(7) || 'x')"),
            t("B3g=")
        );
        // 192.168.1.1 = 192·2^24 + 168·2^16 + 1·2^8 + 1.
        assert_eq!(
            one("SELECT inet_aton('192.168.1.1')"),
            Value::Integer(3_232_235_777)
        );
        assert_eq!(one("SELECT inet_aton('::1')"), Value::Null);
        assert_eq!(one("SELECT inet_aton('300.1.1.1')"), Value::Null);
    }

    #[test]
    fn the_guard_allows_every_function_registered_here() {
        for name in NAMES.iter().chain(math::NAMES).chain(community_id::NAMES) {
            assert!(crate::guard::is_allowed_function(name), "{name}");
        }
    }
}
