//! The old scripts' state files, in exactly their JSON shapes, so that a root left by them continues
//! its cycle (COMPAT §2):
//! - A, `<root>/mongodb_inc_backup_info.json`:
//!   `{"last_circle_backup_time":"<unix seconds>","last_circle_backup_dir_name":"<cycle>"}`
//! - B, `<root>/<cycle>/last.json`: `{"time":"<ts seconds>","inc":"<ts increment>"}`
//!
//! Plus our sidecar `<archive>.pos.json` (B's shape): the position an archive not yet stored in the
//! bucket brings B to once it is. Every write is atomic: temp file, fsync, rename, fsync directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::position::Position;

pub const STATE_A: &str = "mongodb_inc_backup_info.json";
pub const STATE_B: &str = "last.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleInfo {
    pub last_circle_backup_time: String,
    pub last_circle_backup_dir_name: String,
}

impl CycleInfo {
    pub fn started_at(&self) -> Option<i64> {
        self.last_circle_backup_time
            .trim()
            .parse::<f64>()
            .ok()
            .map(|t| t as i64)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OplogPosition {
    pub time: String,
    pub inc: String,
}

impl OplogPosition {
    pub fn new(p: Position) -> Self {
        OplogPosition {
            time: p.t.to_string(),
            inc: p.i.to_string(),
        }
    }

    /// The position, or an error naming the file it came from.
    pub fn position(&self, path: &Path) -> Result<Position> {
        Position::from_state_strings(&self.time, &self.inc).ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "{}: {{\"time\":\"{}\",\"inc\":\"{}\"}} is not an oplog position",
                    path.display(),
                    self.time,
                    self.inc
                ),
            )
        })
    }
}

/// State B of a cycle folder, `None` when it has none yet.
pub fn read_b(cycle_dir: &Path) -> Result<Option<Position>> {
    let path = state_b_path(cycle_dir);
    match read::<OplogPosition>(&path)? {
        Some(p) => Ok(Some(p.position(&path)?)),
        None => Ok(None),
    }
}

pub fn write_b(cycle_dir: &Path, p: Position) -> Result<()> {
    write(&state_b_path(cycle_dir), &OplogPosition::new(p))
}

/// The local root must not be writable by others: anyone could plant the state, archives or links
/// the backup trusts there.
pub fn check_root(root: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(root) {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o002 != 0 {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "db_backup_root_path {} is writable by others (mode {mode:04o}): anyone could plant the files a backup trusts; make it private (chmod 700)",
                        root.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

pub fn state_a_path(root: &Path) -> PathBuf {
    root.join(STATE_A)
}

pub fn state_b_path(cycle_dir: &Path) -> PathBuf {
    cycle_dir.join(STATE_B)
}

/// Reads a small local file the tool wrote (state, manifest copy) without following a symbolic
/// link planted in its place; `None` when it does not exist.
pub fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW);
    }
    let mut file = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "{} is a symbolic link, not a file the backup wrote: remove it",
                    path.display()
                ),
            ))
        }
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path, e))?;
    Ok(Some(bytes))
}

/// Reads a JSON state file; `None` when it does not exist.
pub fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    let Some(bytes) = read_bytes(path)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    serde_json::from_str(&text).map(Some).map_err(|e| {
        Error::new(
            ErrorKind::Config,
            format!(
                "{} is not a valid state file ({e}); fix or remove it",
                path.display()
            ),
        )
    })
}

/// Writes a JSON state file atomically, in the compact form the old scripts wrote.
pub fn write<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text =
        serde_json::to_string(value).map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
    write_atomic(path, text.as_bytes())
}

/// Replaces a file the tool owns (state, manifest copy) with `bytes`, readable by its owner only.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, "tmp", 0o600)
}

/// Replaces a file another program reads (the metrics file), readable by all; several runs may
/// write it at once (a backup and a verify), so each writes through its own temp file.
pub fn write_atomic_readable(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, &format!("{}.tmp", std::process::id()), 0o644)
}

/// Temp file `.<name>.<suffix>` beside `path` (created with `mode`, never through a link), written,
/// synced, renamed over `path`.
fn replace(path: &Path, bytes: &[u8], suffix: &str, mode: u32) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{suffix}",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    // A file (or a link) left at the temp name is removed, never written through.
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode).custom_flags(libc::O_NOFOLLOW);
    }
    let written = opts.open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    let renamed = written
        .map_err(|e| Error::io("write", &tmp, e))
        .and_then(|_| std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", &tmp, e)));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The sidecar of an archive waiting to be stored: the position it brings B to, plus its manifest
/// entry (sidecars of earlier versions hold the position only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    #[serde(flatten)]
    pub position: OplogPosition,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<crate::manifest::ArchiveEntry>,
}

/// `<archive>.pos.json`
pub fn sidecar_path(archive: &Path) -> PathBuf {
    let mut name = archive.file_name().unwrap_or_default().to_os_string();
    name.push(".pos.json");
    archive.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_shapes_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let a = state_a_path(tmp.path());
        std::fs::write(
            &a,
            r#"{"last_circle_backup_time": "1448345493.12", "last_circle_backup_dir_name": "mongodb_cycle_backup_titan_20151124141133"}"#,
        )
        .unwrap();
        let info: CycleInfo = read(&a).unwrap().unwrap();
        assert_eq!(info.started_at(), Some(1448345493));
        write(&a, &info).unwrap();
        assert_eq!(
            std::fs::read_to_string(&a).unwrap(),
            r#"{"last_circle_backup_time":"1448345493.12","last_circle_backup_dir_name":"mongodb_cycle_backup_titan_20151124141133"}"#
        );
        let b = tmp.path().join("last.json");
        write(&b, &OplogPosition::new(Position::new(5, 7))).unwrap();
        assert_eq!(
            std::fs::read_to_string(&b).unwrap(),
            r#"{"time":"5","inc":"7"}"#
        );
        let pos: OplogPosition = read(&b).unwrap().unwrap();
        assert_eq!(pos.position(&b).unwrap(), Position::new(5, 7));
        assert_eq!(read_b(tmp.path()).unwrap(), Some(Position::new(5, 7)));
        assert!(read::<CycleInfo>(&tmp.path().join("none"))
            .unwrap()
            .is_none());
    }
}
