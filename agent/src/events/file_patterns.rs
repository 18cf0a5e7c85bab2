//! osquery's `file_paths` patterns, as [`super::file_watch`] matches them:
//! `%` stands for any characters within one path component, a final `%%`
//! for everything below a directory, a final `/%` (or `/`) for a
//! directory's entries, and a plain path for itself.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// One `file_paths` pattern.
#[derive(Debug)]
pub(super) struct Pattern {
    pub(super) category: String,
    pub(super) text: String,
    /// The components of the directories the pattern's entries are in.
    pub(super) dirs: Vec<Vec<u8>>,
    pub(super) leaf: Leaf,
    /// Index in `dirs` of the first component with a wildcard, `dirs.len()`
    /// when none: the directories from there on are watched to see new
    /// matches appear.
    pub(super) first_wild: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Leaf {
    /// The entries of the directories whose name matches.
    Entry(Vec<u8>),
    /// Everything below the directories (`%%`).
    Below,
}

impl Pattern {
    pub(super) fn parse(category: &str, text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err("not an absolute path".into());
        }
        let mut comps: Vec<Vec<u8>> = text
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(|c| c.as_bytes().to_vec())
            .collect();
        if comps.iter().any(|c| c == b"..") {
            return Err("`..` is not allowed".into());
        }
        let leaf = if text.len() > 1 && text.ends_with('/') {
            Leaf::Entry(b"%".to_vec())
        } else {
            match comps.pop() {
                Some(last) if last == b"%%" => Leaf::Below,
                Some(last) => Leaf::Entry(last),
                None => return Err("the root itself: write /% or /%%".into()),
            }
        };
        let first_wild = comps
            .iter()
            .position(|c| c.contains(&b'%'))
            .unwrap_or(comps.len());
        Ok(Self {
            category: category.to_string(),
            text: text.to_string(),
            dirs: comps,
            leaf,
            first_wild,
        })
    }

    /// Whether a directory with these components is on the way to the
    /// pattern's directories (or is one of them).
    pub(super) fn leads_to(&self, path: &[&[u8]]) -> bool {
        path.len() <= self.dirs.len() && path.iter().zip(&self.dirs).all(|(c, p)| glob(p, c))
    }

    /// Whether a path with these components is one the pattern reports.
    pub(super) fn matches(&self, path: &[&[u8]]) -> bool {
        let n = self.dirs.len();
        match &self.leaf {
            Leaf::Entry(name) => {
                path.len() == n + 1 && self.leads_to(&path[..n]) && glob(name, path[n])
            }
            Leaf::Below => path.len() > n && self.leads_to(&path[..n]),
        }
    }
}

/// Whether `name` matches `pattern`, where `%` stands for any bytes.
pub(super) fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && pattern[p] == b'%' {
            star = Some((p, n));
            p += 1;
        } else if p < pattern.len() && pattern[p] == name[n] {
            p += 1;
            n += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'%')
}

/// A path's components (it is absolute).
pub(super) fn components(path: &Path) -> Vec<&[u8]> {
    path.as_os_str()
        .as_bytes()
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> Pattern {
        Pattern::parse("c", text).unwrap()
    }

    fn hits(text: &str, paths: &[&str]) -> Vec<bool> {
        let p = pattern(text);
        paths
            .iter()
            .map(|path| p.matches(&components(Path::new(path))))
            .collect()
    }

    #[test]
    fn percent_matches_within_one_component() {
        assert!(glob(b"%", b"anything"));
        assert!(glob(b"%", b".hidden"));
        assert!(glob(b"%.conf", b"sshd.conf"));
        assert!(!glob(b"%.conf", b"sshd.conf.bak"));
        assert!(glob(b"a%b%c", b"aXXbYYc"));
        assert!(glob(b"a%b%c", b"abc"));
        assert!(!glob(b"a%b%c", b"acb"));
        assert!(glob(b"passwd", b"passwd"));
        assert!(!glob(b"passwd", b"passwd-"));
        assert!(glob(b"%%", b"x"));
    }

    #[test]
    fn patterns_match_as_in_osquery() {
        let paths = [
            "/etc",
            "/etc/passwd",
            "/etc/ssh",
            "/etc/ssh/sshd_config",
            "/etc/ssh/keys/host_key",
            "/home/alice/.ssh/authorized_keys",
            "/home/alice/.ssh",
            "/home/alice/.ssh/old/id_rsa",
            "/home/alice/notes",
            "/var/log/syslog",
        ];
        // %%: everything below, not the directory itself.
        assert_eq!(
            hits("/etc/%%", &paths),
            [false, true, true, true, true, false, false, false, false, false]
        );
        // /%: the entries directly in the directory; a final / likewise.
        let direct = [
            false, false, false, true, false, false, false, false, false, false,
        ];
        assert_eq!(hits("/etc/ssh/%", &paths), direct);
        assert_eq!(hits("/etc/ssh/", &paths), direct);
        // A middle wildcard.
        assert_eq!(
            hits("/home/%/.ssh/%", &paths),
            [false, false, false, false, false, true, false, false, false, false]
        );
        assert_eq!(
            hits("/home/%/.ssh/%%", &paths),
            [false, false, false, false, false, true, false, true, false, false]
        );
        // A plain path: that file or directory itself.
        assert_eq!(
            hits("/etc/passwd", &paths),
            [false, true, false, false, false, false, false, false, false, false]
        );
        assert_eq!(
            hits("/etc/ssh", &paths),
            [false, false, true, false, false, false, false, false, false, false]
        );
        // % within a name.
        assert_eq!(
            hits("/var/log/sys%", &paths),
            [false, false, false, false, false, false, false, false, false, true]
        );
        assert!(Pattern::parse("c", "etc/%%").is_err());
        assert!(Pattern::parse("c", "/etc/../root/%").is_err());
        assert!(Pattern::parse("c", "/").is_err());
        let p = pattern("/home/%/.ssh/%");
        assert_eq!(p.first_wild, 1);
        assert!(p.leads_to(&components(Path::new("/home/bob"))));
        assert!(!p.leads_to(&components(Path::new("/srv/bob"))));
    }
}
