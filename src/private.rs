//! Local files and folders readable by their owner only: every dump, archive, download, state
//! file and folder bucket object holds (part of) a whole database.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};

/// Creates (truncating) a file readable by its owner only. A symbolic link planted where the file
/// goes is not followed: the open fails.
pub fn create_file(path: &Path) -> Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    opts.open(path).map_err(|e| Error::io("create", path, e))
}

/// Creates a folder and its missing parents, readable by their owner only.
pub fn create_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| Error::io("create directory", dir, e))
}
