//! The flows, one module each: a backup run (`backup`: lock, then `backup_full` or `backup_inc`,
//! whose full dumps go through `overlap` and whose unstored archives `pending` keeps), restores
//! (`restore_full`, `restore_inc`; a dump read as it downloads through `restore_stream`), and the
//! operator's views of the bucket and the installation (`catalog` for `list`, `status`, `verify`,
//! `prune`); `records` are what runs leave for `status` and the metrics file.
//! They order the steps (connect, dump, archive, upload, verify, clean up) and hold no mechanics of
//! their own: those live in `mongo`, `archive` and `storage`.

pub mod backup;
pub mod backup_full;
pub mod backup_inc;
pub mod catalog;
mod full_leftovers;
pub mod overlap;
mod pending;
pub mod prune;
pub mod records;
pub mod restore_full;
pub mod restore_inc;
pub mod restore_stream;
pub mod selective;
pub mod status;
pub mod verify;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::archive;
use crate::config::{Settings, StorageTarget};
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{ArchiveEntry, ArchiveKind};
use crate::mongo::dump::CollectionDump;
use crate::progress::Progress;
use crate::storage::{self, Storage, StorageOptions, VerifiedUpload};

/// Opens the bucket a backup writes to and checks it exists and takes our credentials. A missing
/// folder bucket is created only when `create_bucket_folder=1` or when it lies inside the local
/// root (no share to forget to mount there).
pub async fn open_storage(target: &StorageTarget, settings: &Settings) -> Result<Box<dyn Storage>> {
    let create = match target {
        StorageTarget::Folder { root } => {
            settings.create_bucket_folder || root.starts_with(&settings.db_backup_root_path)
        }
        _ => false,
    };
    open_checked(target, settings, create).await
}

async fn open_checked(
    target: &StorageTarget,
    settings: &Settings,
    create_missing_folder: bool,
) -> Result<Box<dyn Storage>> {
    let opts = StorageOptions {
        create_missing_folder,
        ..settings.storage_options.clone()
    };
    let storage = storage::open(target, &opts)?;
    storage.check().await?;
    Ok(storage)
}

/// The streamed upload when it went through; otherwise the finished archive is uploaded now.
pub async fn upload_unless_streamed(
    storage: &dyn Storage,
    local: &Path,
    key: &str,
    streamed: Option<Result<VerifiedUpload>>,
    progress: &Progress,
) -> Result<VerifiedUpload> {
    match streamed {
        Some(Ok(done)) => {
            log::info!(
                "uploaded {key} to {} while archiving, and verified it (size {}, CRC64 {})",
                storage.describe(),
                done.size,
                done.crc64
            );
            Ok(done)
        }
        Some(Err(e)) => {
            log::warn!(
                "uploading {key} while archiving failed ({e}): uploading the finished archive"
            );
            upload(storage, local, key, progress).await
        }
        None => upload(storage, local, key, progress).await,
    }
}

pub fn log_archived(dir: &Path, stats: &archive::ArchiveStats, started: Instant) {
    log::info!(
        "archived {} ({}, {} → {}) in {:.1}s",
        dir.display(),
        crate::logging::count(stats.files, "file"),
        crate::logging::size(stats.input_bytes),
        crate::logging::size(stats.archive_bytes),
        started.elapsed().as_secs_f64()
    );
}

/// Archives `dir` into `dest` off the async threads with the settings' codec (sealed for their
/// recipients, if any), logging what it took.
pub async fn create_archive(
    dir: &Path,
    dest: &Path,
    settings: &Settings,
    progress: &Progress,
) -> Result<()> {
    let started = Instant::now();
    let (src, out, codec, recipients, progress) = (
        dir.to_path_buf(),
        dest.to_path_buf(),
        settings.codec,
        settings.encryption.clone(),
        progress.clone(),
    );
    let stats = tokio::task::spawn_blocking(move || {
        archive::create(&src, &out, &codec, recipients.as_ref(), &progress)
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Internal, format!("archive task failed: {e}")))??;
    log_archived(dir, &stats, started);
    Ok(())
}

/// Uploads and verifies one file, with a progress bar.
pub async fn upload(
    storage: &dyn Storage,
    local: &Path,
    key: &str,
    progress: &Progress,
) -> Result<VerifiedUpload> {
    let started = Instant::now();
    let total = std::fs::metadata(local).map(|m| m.len()).ok();
    let task = progress.transfer(format!("upload {key}"), total);
    let done = storage
        .put_file(local, key, &|sent| task.report(sent))
        .await?;
    drop(task);
    log::info!(
        "uploaded {key} to {} and verified it (size {}, CRC64 {}) in {:.1}s",
        storage.describe(),
        done.size,
        done.crc64,
        started.elapsed().as_secs_f64()
    );
    Ok(done)
}

/// Downloads one object with a progress bar. The bucket's size (and CRC64, where it reports one)
/// is checked while downloading; `recorded` (its manifest entry) adds the size and CRC64 the backup
/// recorded when it stored the object: a mismatch is an `Integrity` error and nothing is kept.
pub async fn download(
    storage: &dyn Storage,
    key: &str,
    local: &Path,
    recorded: Option<&ArchiveEntry>,
    progress: &Progress,
) -> Result<()> {
    let task = progress.transfer(format!("download {key}"), recorded.map(|r| r.size));
    let crc = storage
        .get_file(key, local, &|got| task.report(got))
        .await?;
    drop(task);
    let Some(recorded) = recorded else {
        return Ok(());
    };
    let size = std::fs::metadata(local)
        .map_err(|e| Error::io("stat", local, e))?
        .len();
    match differs_from_record(size, crc, recorded) {
        None => Ok(()),
        Some(why) => {
            let _ = std::fs::remove_file(local);
            Err(Error::new(ErrorKind::Integrity, format!("{key}: {why}")))
        }
    }
}

/// How `size` bytes with CRC64 `crc` (what was downloaded) differ from the manifest's record of
/// the object, if they do.
pub fn differs_from_record(size: u64, crc: u64, recorded: &ArchiveEntry) -> Option<String> {
    if size != recorded.size {
        return Some(format!(
            "{size} bytes downloaded, {} recorded in the manifest",
            recorded.size
        ));
    }
    recorded
        .crc64_value()
        .filter(|expected| *expected != crc)
        .map(|expected| {
            format!("CRC64 {crc} downloaded, {expected} recorded in the manifest (the content was changed)")
        })
}

/// A manifest entry for a dump (its collections' counts and hashes, sealed with the archive's
/// recipients when encrypting) or an increment; key, size and CRC64 are filled in once the
/// archive is stored.
pub fn manifest_entry(
    kind: ArchiveKind,
    collections: &[CollectionDump],
    settings: &Settings,
) -> Result<ArchiveEntry> {
    let mut entry = ArchiveEntry {
        collections: collections
            .iter()
            .filter(|c| !c.is_view)
            .map(|c| {
                (
                    format!("{}.{}", c.database, c.collection),
                    c.digest.summary(),
                )
            })
            .collect(),
        ..ArchiveEntry::new(kind)
    };
    if let (Some(recipients), false) = (&settings.encryption, entry.collections.is_empty()) {
        entry.seal_collections(recipients)?;
    }
    Ok(entry)
}

/// The configured bucket, opened and checked; `what` names the purpose in the error.
pub async fn open_source_storage(settings: &Settings, what: &str) -> Result<Box<dyn Storage>> {
    let target = settings.storage.as_ref().ok_or_else(|| {
        Error::config(format!(
            "no bucket is configured for {what}: set is_upload_to_oss=1 with endpoint and bucket, or storage_url"
        ))
    })?;
    open_checked(target, settings, false).await
}

/// Extracts a downloaded archive into the directory it sits in (off the async threads), opening
/// it with `identity` when it is sealed.
pub async fn extract_beside(
    archive_path: PathBuf,
    identity: Option<std::sync::Arc<crate::crypt::Identity>>,
) -> Result<()> {
    let dest = archive_path
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    tokio::task::spawn_blocking(move || {
        archive::extract(&archive_path, &dest, identity.as_deref())
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Internal, format!("extract task failed: {e}")))??;
    Ok(())
}
