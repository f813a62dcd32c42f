//! One backup at a time: an OS advisory lock (flock) on `backup.lock` beside start.py. The kernel
//! releases it when the process dies, so a file left by a crash (or by the old scripts, which used
//! the file's mere existence) never blocks a later run.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

pub const LOCK_FILE: &str = "backup.lock";

/// Held for the whole run; dropping it releases the lock.
pub struct RunLock {
    _file: std::fs::File,
    pub path: PathBuf,
}

/// Takes the lock in `dir`, or fails with `Busy` naming the pid of the run that holds it.
pub fn acquire(dir: &Path) -> Result<RunLock> {
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let pid = holder.trim();
            let who = if pid.is_empty() {
                "unknown".to_string()
            } else {
                pid.to_string()
            };
            return Err(Error::new(
                ErrorKind::Busy,
                format!("another backup is running (pid {who}); this run does nothing"),
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
    }
    file.set_len(0).map_err(|e| Error::io("write", &path, e))?;
    file.rewind().map_err(|e| Error::io("write", &path, e))?;
    write!(file, "{}", std::process::id()).map_err(|e| Error::io("write", &path, e))?;
    Ok(RunLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_busy_and_stale_file_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(LOCK_FILE), "12345").unwrap(); // left by a crash
        let held = acquire(tmp.path()).unwrap();
        let err = acquire(tmp.path()).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Busy);
        assert!(err
            .to_string()
            .contains(&format!("pid {}", std::process::id())));
        drop(held);
        assert!(acquire(tmp.path()).is_ok());
    }
}
