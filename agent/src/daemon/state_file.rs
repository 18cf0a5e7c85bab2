//! The agent's small state files (hunt ledger, differential state, spool
//! cursor): written so a crash at any moment leaves either the old or the new
//! file, never a torn one, and read so a corrupt file is moved aside with a
//! warning instead of keeping the agent from starting.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::error::AgentError;

/// Writes `bytes` to a temporary file beside `path`, fsyncs it, renames it
/// over `path` and fsyncs the directory, so the rename itself survives a
/// power cut.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    let io = |e| AgentError::io(format!("writing {}", path.display()), e);
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

/// Reads and decodes `path`: None when it does not exist. A file that cannot
/// be decoded is renamed to `<name>.corrupt` (the evidence is kept) and None
/// is returned, with a warning naming what `what` holds.
pub fn read_or_set_aside<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
) -> Result<Option<T>, AgentError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AgentError::io(format!("reading {}", path.display()), e)),
    };
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            let aside = set_aside_path(path);
            warn!(path = %path.display(), moved_to = %aside.display(), error = %e, "corrupt {what}; starting without it");
            std::fs::rename(path, &aside)
                .map_err(|e| AgentError::io(format!("moving {} aside", path.display()), e))?;
            Ok(None)
        }
    }
}

fn set_aside_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".corrupt");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sets_corrupt_files_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(read_or_set_aside::<Vec<u32>>(&path, "state").unwrap(), None);
        write_atomic(&path, b"[1,2,3]").unwrap();
        assert_eq!(
            read_or_set_aside::<Vec<u32>>(&path, "state").unwrap(),
            Some(vec![1, 2, 3])
        );
        assert!(!path.with_extension("tmp").exists());
        std::fs::write(&path, b"[1,2,").unwrap();
        assert_eq!(read_or_set_aside::<Vec<u32>>(&path, "state").unwrap(), None);
        assert!(!path.exists());
        assert_eq!(
            std::fs::read(dir.path().join("state.json.corrupt")).unwrap(),
            b"[1,2,"
        );
    }
}
