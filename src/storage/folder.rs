//! A local folder as a bucket (`file://`, OpenDAL's fs service): what OpenDAL leaves to us there.
//! The folder must exist (an unmounted share must not become a folder on the local disk); what is
//! stored is readable by its owner only; and an object is written aside under `PARTIAL_DIR` and
//! renamed into place once complete, since the fs writer writes in place and a cut upload would
//! otherwise look stored.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// Where a folder bucket's objects are written before they are renamed into place (a name no
/// backup key starts with, so `list`, `verify` and `prune` leave it alone).
const PARTIAL_DIR: &str = ".partial";

/// A partial file untouched this long belongs to no running upload.
const STALE_PARTIAL: Duration = Duration::from_secs(7 * 86_400);

/// Where the object `key` is written before it is renamed into place.
pub fn partial_key(key: &str) -> String {
    format!("{PARTIAL_DIR}/{key}")
}

/// A folder bucket must exist and be a directory; it is created (readable by its owner only) only
/// when that is allowed.
pub fn prepare_root(root: &Path, create: bool) -> Result<()> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::new(
            ErrorKind::StorageNotFound,
            format!(
                "the bucket folder {} is not a directory",
                root.display()
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            log::info!("creating the bucket folder {}", root.display());
            crate::private::create_dir(root)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::new(
            ErrorKind::StorageNotFound,
            format!(
                "the bucket folder {} does not exist (is the share mounted?); create it, or set create_bucket_folder=1",
                root.display()
            ),
        )),
        Err(e) => Err(Error::io("open the bucket folder", root, e)),
    }
}

/// Creates a folder object's parent folders (0700) and the file itself (0600) before OpenDAL
/// writes into it (it truncates and keeps the mode): a bucket folder holds whole databases.
pub fn prepare_object(bucket: &Path, key: &str) -> Result<()> {
    prepare_parent(bucket, key)?;
    let path = bucket.join(key);
    let file = crate::private::create_file(&path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io("protect", &path, e))?;
    }
    drop(file);
    Ok(())
}

/// Creates the folders above a folder object (0700).
pub fn prepare_parent(bucket: &Path, key: &str) -> Result<()> {
    match bucket.join(key).parent() {
        Some(parent) => crate::private::create_dir(parent),
        None => Ok(()),
    }
}

/// Removes the folders `PARTIAL_DIR` held an object in, up to `PARTIAL_DIR` itself, as they
/// empty (another upload's stay): the bucket folder shows backups only.
pub fn remove_empty_partial_folders(bucket: &Path, partial_key: &str) {
    let mut dir = bucket.join(partial_key);
    while dir.pop() && dir != bucket && std::fs::remove_dir(&dir).is_ok() {}
}

/// Removes partial files no upload has written to for `STALE_PARTIAL` (left by runs that were
/// killed: an upload in progress writes every part as it comes).
pub fn remove_stale_partials(bucket: &Path) {
    let root = bucket.join(PARTIAL_DIR);
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let age = meta.modified().ok().and_then(|t| t.elapsed().ok());
            if meta.is_dir() {
                stack.push(path);
            } else if age.is_some_and(|a| a > STALE_PARTIAL) && std::fs::remove_file(&path).is_ok()
            {
                log::info!(
                    "removed {}, left by an upload that was cut short",
                    path.display()
                );
                let key = path.strip_prefix(bucket).unwrap_or(&path);
                remove_empty_partial_folders(bucket, &key.to_string_lossy());
            }
        }
    }
}
