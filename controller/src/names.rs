//! Names operators give things, and patterns over the names rows carry.

use crate::ControllerError;

/// Longest schedule or pack name: it is a key segment (a znode name on
/// ZooKeeper) and part of every row's `name`, so it is kept short enough to
/// read.
const MAX_NAME: usize = 128;

/// Checks that `name` is a safe key segment (etcd key, ZooKeeper znode):
/// `[A-Za-z0-9_.-]+`, not `.` or `..` (which read as paths to anyone
/// browsing the keyspace, and which ZooKeeper refuses).
pub fn check(what: &'static str, name: &str) -> Result<(), ControllerError> {
    let bad = |reason: String| {
        Err(ControllerError::InvalidName {
            what,
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty".into());
    }
    if name.len() > MAX_NAME {
        return bad(format!("longer than {MAX_NAME} characters"));
    }
    if name == "." || name == ".." {
        return bad("`.` and `..` are not names".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return bad(format!(
            "`{}` is not allowed; use letters, digits, `_`, `.` and `-`",
            c.escape_default()
        ));
    }
    Ok(())
}

/// Whether `text` matches `pattern`, where `*` stands for any run of
/// characters (also none) and everything else for itself.
pub use sweep_proto::text::glob;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_key_segments() {
        for ok in ["users", "pack_it-1", "v1.2", "A_b-C.d", "x"] {
            assert!(check("schedule", ok).is_ok(), "{ok}");
        }
        for bad in [
            "", ".", "..", "a/b", "a b", "hunt:1", "ä", "a\nb", "../x", "a*",
        ] {
            assert!(check("schedule", bad).is_err(), "{bad:?}");
        }
        assert!(check("pack", &"a".repeat(MAX_NAME)).is_ok());
        assert!(check("pack", &"a".repeat(MAX_NAME + 1)).is_err());
        let e = check("pack", "a/b").unwrap_err().to_string();
        assert!(
            e.contains("invalid pack name `a/b`") && e.contains("`/`"),
            "{e}"
        );
    }

    #[test]
    fn glob_matches_stars_and_literals() {
        assert!(glob("pack_*", "pack_it_users"));
        assert!(!glob("pack_*", "users"));
        assert!(glob("hunt:*", "hunt:0123abcd"));
        assert!(glob("*", ""));
        assert!(glob("*", "anything"));
        assert!(glob("users", "users"));
        assert!(!glob("users", "users2"));
        assert!(!glob("users", "user"));
        assert!(glob("*_users", "pack_it_users"));
        assert!(glob("pack_*_users", "pack_it_users"));
        assert!(glob("pack_*_users", "pack__users"));
        assert!(!glob("pack_*_users", "pack_it_groups"));
        assert!(glob("a*b*c", "aXbYbZc"));
        assert!(!glob("a*b*c", "aXbYbZ"));
        assert!(glob("**a**", "bab"));
        assert!(glob("", ""));
        assert!(!glob("", "a"));
        // Only `*` is special: `?` and `.` are literal.
        assert!(!glob("a?c", "abc"));
        assert!(glob("a.c", "a.c"));
        assert!(!glob("a.c", "abc"));
        // Needs backtracking past a false start.
        assert!(glob("*ab", "aab"));
        assert!(glob("*aab", "aaab"));
    }
}
