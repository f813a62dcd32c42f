//! What a full-mode run (`is_inc_backup=0`) left in the local root when it failed or died, taken
//! care of by the next run before its own dump. An archive finished but not stored (its entry
//! sidecar, written before the upload may complete, beside it) is stored and recorded; one the
//! bucket holds already (the run died before its record) is recorded. An archive without its
//! sidecar is read through: finished (a run died before writing the sidecar, or the old start.py
//! failed to upload it, which nothing ever retried), it is stored the same way; cut short, it goes
//! with its dump folder. A backup folder with neither archive nor sidecar is left alone: without
//! a bucket, such a folder is the backup.

use std::path::{Path, PathBuf};

use crate::config::Settings;
use crate::error::{Error, ErrorKind, Result};
use crate::layout::Key;
use crate::manifest::{self, ArchiveEntry, ArchiveKind};
use crate::progress::Progress;
use crate::storage::{ObjectInfo, Storage, VerifiedUpload};

const SIDECAR_SUFFIX: &str = ".entry.json";

/// `<archive>.entry.json`: the archive's manifest entry, written once the archive is complete
/// (with its size and CRC64 when it streamed without a local copy).
pub(super) fn sidecar_of(archive: &Path) -> PathBuf {
    let mut name = archive.file_name().unwrap_or_default().to_os_string();
    name.push(SIDECAR_SUFFIX);
    archive.with_file_name(name)
}

/// Stores or records each finished leftover, removes each cut-short one. A leftover that cannot
/// be stored stays, with a warning, and does not stop this run's own backup. Returns the keys
/// stored or recorded.
pub(super) async fn take_care(
    storage: &dyn Storage,
    settings: &Settings,
    progress: &Progress,
) -> Vec<String> {
    let root = &settings.db_backup_root_path;
    let mut done = Vec::new();
    for file in leftover_archive_names(root) {
        let archive = root.join(&file);
        match take_care_of(storage, settings, &archive, &file, progress).await {
            Ok(true) => done.push(file),
            Ok(false) => {}
            Err(e) => log::warn!(
                "{file}, left by an earlier run, is still not stored: {e}; it stays in {}",
                root.display()
            ),
        }
    }
    done
}

/// File names in `root` of full-mode archives, or of the sidecars of archives not kept locally.
fn leftover_archive_names(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .map(|n| {
            n.strip_suffix(SIDECAR_SUFFIX)
                .map(str::to_string)
                .unwrap_or(n)
        })
        .filter(|n| matches!(Key::parse(n, ""), Key::FullBackup { .. }))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `Ok(true)` when the archive is now stored and recorded, `Ok(false)` when it was removed.
async fn take_care_of(
    storage: &dyn Storage,
    settings: &Settings,
    archive: &Path,
    key: &str,
    progress: &Progress,
) -> Result<bool> {
    let Key::FullBackup { name } = Key::parse(key, "") else {
        return Ok(false);
    };
    let root = &settings.db_backup_root_path;
    let sidecar = sidecar_of(archive);
    let dump_dir = root.join(name);
    let entry = match crate::state::read::<ArchiveEntry>(&sidecar)? {
        Some(entry) => entry,
        None => match finished_archive(archive, name).await {
            Some(entry) => entry,
            None => {
                log::info!(
                    "removing {key} and its dump folder: a run died before the archive was finished"
                );
                remove(&[archive, &dump_dir]);
                return Ok(false);
            }
        },
    };
    if !archive.exists() && entry.crc64.is_empty() {
        // A local copy was kept, and it goes only once the backup is recorded: a run died
        // between removing it and its sidecar.
        remove(&[&dump_dir, &sidecar]);
        return Ok(false);
    }
    let stored = storage.head(key).await?;
    let done = match (archive.exists(), stored) {
        (true, None) => {
            log::info!("storing {key}, which an earlier run could not store");
            super::upload_unless_streamed(storage, archive, key, None, progress).await?
        }
        (true, Some(stored)) => {
            let local = VerifiedUpload {
                key: key.to_string(),
                size: std::fs::metadata(archive)
                    .map_err(|e| Error::io("stat", archive, e))?
                    .len(),
                crc64: crate::storage::file_crc64(archive)?,
            };
            same_bytes(storage, &stored, &local)?;
            log::info!("recording {key}, stored by an earlier run that died before recording it");
            local
        }
        (false, None) => {
            log::warn!(
                "{key} never reached {} (local_copy=0 kept no archive): that backup is lost; this run makes a new one",
                storage.describe()
            );
            remove(&[&sidecar, &dump_dir]);
            return Ok(false);
        }
        (false, Some(stored)) => {
            let streamed = VerifiedUpload {
                key: key.to_string(),
                size: entry.size,
                crc64: entry.crc64_value().unwrap_or_default(),
            };
            same_bytes(storage, &stored, &streamed)?;
            log::info!("recording {key}, stored by an earlier run that died before recording it");
            streamed
        }
    };
    let place = manifest::Place::of_full_backup(root, name, &settings.db_name);
    manifest::record_stored(storage, &place, entry, &done).await?;
    // The sidecar last: alone, it names a recorded backup (see the start of `take_care_of`).
    remove(&[&dump_dir, archive, &place.local, &sidecar]);
    Ok(true)
}

/// The entry of an archive left without sidecar, if it reads through to its end as the backup
/// `name` (an archive sealed with age cannot be read here: none was made without a sidecar).
async fn finished_archive(archive: &Path, name: &str) -> Option<ArchiveEntry> {
    if !archive.exists() || archive.to_string_lossy().ends_with(".age") {
        return None;
    }
    let path = archive.to_path_buf();
    let read = tokio::task::spawn_blocking(move || crate::archive::read_through(&path)).await;
    match read {
        Ok(Ok((kind, tops))) if tops == [name] => {
            log::info!(
                "{} is a finished backup that an earlier run did not store",
                archive.display()
            );
            Some(ArchiveEntry {
                codec: Some(kind),
                ..ArchiveEntry::new(ArchiveKind::Full)
            })
        }
        _ => None,
    }
}

/// The object `stored` is the archive described by `expected`.
fn same_bytes(storage: &dyn Storage, stored: &ObjectInfo, expected: &VerifiedUpload) -> Result<()> {
    if stored.holds(expected.size, expected.crc64) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Integrity,
        format!(
            "{} in {} holds another archive ({} bytes, not {}): it is not overwritten",
            stored.key,
            storage.describe(),
            stored.size,
            expected.size
        ),
    ))
}

fn remove(paths: &[&Path]) {
    for path in paths {
        let _ = match path.is_dir() {
            true => std::fs::remove_dir_all(path),
            false => std::fs::remove_file(path),
        };
    }
}
