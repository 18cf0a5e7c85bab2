//! Reading files that a host's users control (shell history, authorized
//! keys, crontabs) without letting those users steer the read. The agent is
//! root; the file's owner may be an intruder. So a user file is:
//!
//! - opened beneath a directory the agent trusts (a home directory from
//!   `/etc/passwd`, a spool directory), with no symbolic link followed on the
//!   way (`openat2` with `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH`): a history
//!   that is a link to `/etc/shadow` is not read;
//! - opened without blocking, and read only if it is a regular file (a FIFO
//!   or `/dev/zero` is skipped, never waited on or read for ever);
//! - read only if owned by the user it is attributed to (or root), as
//!   osquery does, so a hard link to someone else's file gives nothing;
//! - read up to [`MAX_FILE_BYTES`], in lines of at most [`MAX_LINE_BYTES`],
//!   with the query's deadline checked as it goes.
//!
//! Anything that fails these checks is skipped, as a missing file is, and
//! counted in the query's read account (`user_file_refused`).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::ScanContext;
use crate::error::AgentError;

/// The most read from one user file.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// The longest line kept whole; the rest of a longer one is skipped.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Who may own a user file for it to be read.
#[derive(Debug, Clone, Copy)]
pub enum Owner {
    /// The user the rows are attributed to, or root.
    User(u32),
    /// Anyone: for files in directories only root and setgid tools write
    /// (cron's spool), where links and FIFOs are still refused.
    Any,
}

/// Opens `relative` (no `..`, no symbolic links) beneath the trusted
/// directory `base`, as described above. None when it is missing or refused.
pub fn open(ctx: &ScanContext<'_>, base: &Path, relative: &Path, owner: Owner) -> Option<File> {
    let dir = File::open(base).ok()?;
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let fd = match rustix::fs::openat2(&dir, relative, flags, Mode::empty(), resolve) {
        Ok(fd) => fd,
        // A kernel before 5.6 has no openat2: refuse links at the last
        // component at least (the file itself is what users plant).
        Err(rustix::io::Errno::NOSYS) => {
            rustix::fs::openat(&dir, relative, flags | OFlags::NOFOLLOW, Mode::empty()).ok()?
        }
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return None,
        Err(_) => {
            ctx.note_read("user_file_refused");
            return None;
        }
    };
    let file = File::from(fd);
    let meta = file.metadata().ok()?;
    let owner_ok = match owner {
        Owner::User(uid) => meta.uid() == uid || meta.uid() == 0,
        Owner::Any => true,
    };
    if !meta.file_type().is_file() || !owner_ok {
        ctx.note_read("user_file_refused");
        return None;
    }
    ctx.note_read("user_file");
    Some(file)
}

/// Reads a user file whole (up to [`MAX_FILE_BYTES`]) as text.
pub fn read_text(
    ctx: &ScanContext<'_>,
    base: &Path,
    relative: &Path,
    owner: Owner,
) -> Result<Option<String>, AgentError> {
    let Some(file) = open(ctx, base, relative, owner) else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    let mut reader = file.take(MAX_FILE_BYTES);
    let mut buf = [0u8; 64 * 1024];
    loop {
        ctx.check()?;
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Hands each line of a user file (without its line break, at most
/// [`MAX_LINE_BYTES`]) to `each`. Returns whether the file was read.
pub fn for_each_line(
    ctx: &ScanContext<'_>,
    base: &Path,
    relative: &Path,
    owner: Owner,
    mut each: impl FnMut(&str),
) -> Result<bool, AgentError> {
    let Some(file) = open(ctx, base, relative, owner) else {
        return Ok(false);
    };
    let mut reader = BufReader::new(file.take(MAX_FILE_BYTES));
    let mut line = Vec::new();
    loop {
        ctx.check()?;
        line.clear();
        // Bounded: a line longer than the cap is read in pieces and all but
        // the first dropped.
        let n = match (&mut reader)
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if n == MAX_LINE_BYTES && line.last() != Some(&b'\n') {
            skip_rest_of_line(ctx, &mut reader)?;
        }
        let text = String::from_utf8_lossy(&line);
        each(text.trim_end_matches(['\n', '\r']));
    }
    Ok(true)
}

fn skip_rest_of_line(ctx: &ScanContext<'_>, reader: &mut impl BufRead) -> Result<(), AgentError> {
    loop {
        ctx.check()?;
        let (done, used) = match reader.fill_buf() {
            Ok([]) | Err(_) => return Ok(()),
            Ok(buf) => match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (true, i + 1),
                None => (false, buf.len()),
            },
        };
        reader.consume(used);
        if done {
            return Ok(());
        }
    }
}

/// The most entries [`subdirs`] looks at in one directory.
pub const MAX_DIR_ENTRIES: usize = 100_000;

/// The names of the directories in `relative` beneath the trusted directory
/// `base`, sorted, under the same rules as [`open`]: no symbolic link is
/// followed on the way, and an entry that is a link (or anything but a
/// directory) is not listed. Empty when the directory is missing or refused.
/// At most [`MAX_DIR_ENTRIES`] entries are looked at; names that are not
/// UTF-8 are skipped.
pub fn subdirs(
    ctx: &ScanContext<'_>,
    base: &Path,
    relative: &Path,
) -> Result<Vec<String>, AgentError> {
    let Ok(dir) = File::open(base) else {
        return Ok(Vec::new());
    };
    let relative = if relative.as_os_str().is_empty() {
        Path::new(".")
    } else {
        relative
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOCTTY | OFlags::CLOEXEC;
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let fd = match rustix::fs::openat2(&dir, relative, flags, Mode::empty(), resolve) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOSYS) => {
            match rustix::fs::openat(&dir, relative, flags | OFlags::NOFOLLOW, Mode::empty()) {
                Ok(fd) => fd,
                Err(_) => return Ok(Vec::new()),
            }
        }
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Ok(Vec::new()),
        Err(_) => {
            ctx.note_read("user_file_refused");
            return Ok(Vec::new());
        }
    };
    let Ok(entries) = rustix::fs::Dir::read_from(&fd) else {
        return Ok(Vec::new());
    };
    ctx.note_read("user_dir");
    let mut names = Vec::new();
    for (i, entry) in entries.enumerate() {
        if i >= MAX_DIR_ENTRIES {
            break;
        }
        if i % 1024 == 0 {
            ctx.check()?;
        }
        let Ok(entry) = entry else {
            break;
        };
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if name == "." || name == ".." {
            continue;
        }
        let is_dir = match entry.file_type() {
            rustix::fs::FileType::Directory => true,
            rustix::fs::FileType::Unknown => {
                rustix::fs::statat(&fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok_and(
                    |st| {
                        rustix::fs::FileType::from_raw_mode(st.st_mode)
                            == rustix::fs::FileType::Directory
                    },
                )
            }
            _ => false,
        };
        if is_dir {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{Budget, TableEnv};
    use std::os::unix::fs::symlink;

    fn scan_context() -> (std::sync::Arc<Budget>, TableEnv) {
        (Budget::unlimited(), TableEnv::default())
    }

    #[test]
    fn links_fifos_devices_and_foreign_files_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(secret.path(), "root:secret-hash:\n").unwrap();
        std::fs::write(home.join("plain"), "one\ntwo\n").unwrap();
        symlink(secret.path(), home.join("link")).unwrap();
        symlink("/dev/zero", home.join("zero")).unwrap();
        std::fs::create_dir(home.join("sub")).unwrap();
        symlink(home.join("sub"), home.join("dirlink")).unwrap();
        std::fs::write(home.join("sub/file"), "x\n").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            home.join("fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let (budget, env) = scan_context();
        let ctx = ScanContext::all("t", &[], &budget, &env);
        let me = rustix::process::getuid().as_raw();
        let read = |name: &str| read_text(&ctx, home, Path::new(name), Owner::User(me)).unwrap();
        assert_eq!(read("plain").as_deref(), Some("one\ntwo\n"));
        assert_eq!(read("sub/file").as_deref(), Some("x\n"));
        for refused in ["link", "zero", "fifo", "dirlink/file", "../x", "missing"] {
            assert_eq!(read(refused), None, "{refused}");
        }
        // Owned by someone else (root owns it, the user is uid 4242).
        if me == 0 {
            let other = read_text(&ctx, home, Path::new("plain"), Owner::User(4242)).unwrap();
            assert_eq!(
                other.as_deref(),
                Some("one\ntwo\n"),
                "root's own files are read"
            );
            rustix::fs::chown(
                home.join("plain"),
                Some(rustix::process::Uid::from_raw(4243)),
                None,
            )
            .unwrap();
            let foreign = read_text(&ctx, home, Path::new("plain"), Owner::User(4242)).unwrap();
            assert_eq!(
                foreign, None,
                "a file of uid 4243 is not uid 4242's history"
            );
        }
    }

    #[test]
    fn long_lines_and_large_files_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let long = "y".repeat(MAX_LINE_BYTES * 3);
        std::fs::write(dir.path().join("h"), format!("a\n{long}\nb\n")).unwrap();
        let (budget, env) = scan_context();
        let ctx = ScanContext::all("t", &[], &budget, &env);
        let me = rustix::process::getuid().as_raw();
        let mut lines = Vec::new();
        for_each_line(&ctx, dir.path(), Path::new("h"), Owner::User(me), |l| {
            lines.push(l.len())
        })
        .unwrap();
        assert_eq!(lines, vec![1, MAX_LINE_BYTES, 1]);
    }

    #[test]
    fn subdirs_lists_real_directories_only() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        std::fs::create_dir_all(home.join("p/b")).unwrap();
        std::fs::create_dir_all(home.join("p/a")).unwrap();
        std::fs::write(home.join("p/file"), "x").unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::create_dir(elsewhere.path().join("secret")).unwrap();
        symlink(elsewhere.path(), home.join("p/link")).unwrap();
        symlink(home.join("p"), home.join("plink")).unwrap();
        let (budget, env) = scan_context();
        let ctx = ScanContext::all("t", &[], &budget, &env);
        let list = |rel: &str| subdirs(&ctx, home, Path::new(rel)).unwrap();
        assert_eq!(list("p"), vec!["a", "b"]);
        assert_eq!(list(""), vec!["p"]);
        for refused in ["plink", "p/link", "p/file", "missing", "../"] {
            assert!(list(refused).is_empty(), "{refused}");
        }
    }
}
