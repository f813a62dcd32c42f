//! Archives of a cycle waiting to be stored: each has a sidecar (`<archive>.pos.json`) with the
//! position it brings B to and its manifest entry, written before its upload may complete. A run
//! stores its own that way (`upload_pending`); the next run stores what an earlier one could not
//! (`flush_pending`), records a streamed dump whose record it missed (`recover_streamed`), and
//! removes what a run that died left half-made. A key is never written over with other bytes.

use std::path::{Path, PathBuf};

use crate::config::Settings;
use crate::error::{Error, ErrorKind, Result};
use crate::layout::{self, Key};
use crate::manifest::{self, ArchiveEntry, ArchiveKind};
use crate::position::Position;
use crate::progress::Progress;
use crate::state::{self, read_b, write_b, Pending};
use crate::storage::{Storage, VerifiedUpload};

/// Uploads one archive whose sidecar holds its position (unless `streamed` did already), records
/// it in the cycle's manifest, then advances B and cleans up.
pub(super) async fn upload_pending(
    storage: &dyn Storage,
    archive_path: &Path,
    key: &str,
    cycle_dir: &Path,
    settings: &Settings,
    progress: &Progress,
    streamed: Option<Result<VerifiedUpload>>,
) -> Result<VerifiedUpload> {
    let sidecar = state::sidecar_path(archive_path);
    let pending: Pending = state::read(&sidecar)?.ok_or_else(|| {
        Error::new(
            ErrorKind::Internal,
            format!("{} is missing", sidecar.display()),
        )
    })?;
    let position = pending.position.position(&sidecar)?;
    if !matches!(streamed, Some(Ok(_))) {
        refuse_overwrite(storage, archive_path, key).await?;
    }
    let done =
        super::upload_unless_streamed(storage, archive_path, key, streamed, progress).await?;
    crate::hooks::crash_point("after_upload");
    let (cycle, kind) = match Key::parse(key, "") {
        Key::CycleFull { cycle } => (cycle, ArchiveKind::Full),
        Key::Increment { cycle, .. } => (cycle, ArchiveKind::Increment),
        _ => {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("{key} is not an archive of a cycle"),
            ))
        }
    };
    let entry = pending.entry.unwrap_or_else(|| ArchiveEntry::new(kind));
    let place = manifest::Place::of_cycle(cycle_dir, cycle, &settings.db_name);
    manifest::record_stored(storage, &place, entry, &done).await?;
    crate::hooks::crash_point("after_manifest");
    let newer = read_b(cycle_dir)?.is_none_or(|b| position > b);
    if newer {
        write_b(cycle_dir, position)?;
    }
    let _ = std::fs::remove_dir_all(layout::dir_of_archive(archive_path));
    match std::fs::remove_file(archive_path) {
        // Not kept (`local_copy=0`).
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io("remove", archive_path, e))
        }
        _ => {}
    }
    std::fs::remove_file(&sidecar).map_err(|e| Error::io("remove", &sidecar, e))?;
    Ok(done)
}

/// A full dump streamed without a local copy (`local_copy=0`) by a run that died before recording
/// it: only its sidecar is left, with the position, the manifest entry and the size and CRC64
/// that streamed. The object in the bucket is recorded if it is that archive (`true`); if the
/// upload never completed, the sidecar goes and the cycle, without its position, is dumped again.
async fn recover_streamed(
    storage: &dyn Storage,
    sidecar: &Path,
    archive_path: &Path,
    key: &str,
    cycle_dir: &Path,
    settings: &Settings,
) -> Result<bool> {
    let pending: Pending = state::read(sidecar)?.ok_or_else(|| {
        Error::new(
            ErrorKind::Internal,
            format!("{} is missing", sidecar.display()),
        )
    })?;
    let recorded = pending.entry.as_ref().filter(|e| !e.crc64.is_empty());
    let stored = storage.head(key).await?;
    let (Some(entry), Some(stored)) = (recorded, stored) else {
        log::warn!(
            "{key} never reached {} (local_copy=0 kept no archive): its cycle starts again",
            storage.describe()
        );
        std::fs::remove_file(sidecar).map_err(|e| Error::io("remove", sidecar, e))?;
        return Ok(false);
    };
    if !stored.holds(entry.size, entry.crc64_value().unwrap_or_default()) {
        return Err(Error::new(
            ErrorKind::Integrity,
            format!(
                "{key} in {} holds {} bytes, not the {} bytes an earlier run streamed there; {} stays for an operator",
                storage.describe(),
                stored.size,
                entry.size,
                sidecar.display()
            ),
        ));
    }
    log::info!("recording {key}, stored by an earlier run that died before recording it");
    let done = VerifiedUpload {
        key: key.to_string(),
        size: entry.size,
        crc64: entry.crc64_value().unwrap_or_default(),
    };
    upload_pending(
        storage,
        archive_path,
        key,
        cycle_dir,
        settings,
        &Progress::none(),
        Some(Ok(done)),
    )
    .await
    .map(|_| true)
}

/// An archive is stored under a key only when the key is free or holds these very bytes (the same
/// archive stored again after a run died between its upload and its record).
async fn refuse_overwrite(storage: &dyn Storage, archive_path: &Path, key: &str) -> Result<()> {
    let Some(stored) = storage.head(key).await? else {
        return Ok(());
    };
    let size = std::fs::metadata(archive_path)
        .map_err(|e| Error::io("stat", archive_path, e))?
        .len();
    let same = stored.size == size
        && match stored.crc64 {
            Some(crc) => crc == crate::storage::file_crc64(archive_path)?,
            None => true,
        };
    if same {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Integrity,
        format!(
            "refusing to overwrite {key} in {}: it holds another archive ({} bytes); {} stays for the next run",
            storage.describe(),
            stored.size,
            archive_path.display()
        ),
    ))
}

/// Stores, in order, the archives earlier runs could not store (those with a `.pos.json`), and
/// removes what a run that died left half-made (archives without sidecar, their directories).
pub(super) async fn flush_pending(
    storage: &dyn Storage,
    root: &Path,
    settings: &Settings,
    progress: &Progress,
) -> Result<Vec<String>> {
    let mut cycles: Vec<PathBuf> = match std::fs::read_dir(root) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_dir()
                    && p.file_name().is_some_and(|n| {
                        layout::is_cycle_name(&n.to_string_lossy(), &settings.cycle_prefix)
                    })
            })
            .collect(),
        Err(_) => return Ok(Vec::new()),
    };
    cycles.sort();
    let mut stored = Vec::new();
    for cycle_dir in cycles {
        let cycle = cycle_dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let mut archives = layout::existing_archives_of(&layout::full_dir(&cycle_dir));
        if let Ok(entries) = std::fs::read_dir(layout::increments_dir(&cycle_dir)) {
            let mut incs: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| layout::strip_archive_suffix(&p.to_string_lossy()).is_some())
                .collect();
            incs.sort();
            archives.extend(incs);
        }
        remove_unfinished_increments(&cycle_dir);
        for format in layout::Format::ALL {
            let archive_path = layout::archive_path_for(&layout::full_dir(&cycle_dir), format);
            let sidecar = state::sidecar_path(&archive_path);
            if sidecar.exists() && !archive_path.exists() {
                let key = layout::cycle_full_key(&cycle, format);
                if recover_streamed(storage, &sidecar, &archive_path, &key, &cycle_dir, settings)
                    .await?
                {
                    stored.push(key);
                }
            }
        }
        for archive_path in archives.into_iter().filter(|a| a.exists()) {
            let left_by_old = !state::sidecar_path(&archive_path).exists();
            if left_by_old {
                let Some(position) = left_by_old_scripts(&cycle_dir, &archive_path).await else {
                    // Died between writing the archive and its sidecar: B never covered it.
                    let _ = std::fs::remove_file(&archive_path);
                    continue;
                };
                // The old scripts moved B past an archive whose upload failed and never tried
                // again: without it the chain has a hole. It is stored now, its range unknown.
                log::info!(
                    "{} was left unstored by the old scripts: storing it",
                    archive_path.display()
                );
                let pending = Pending {
                    position: state::OplogPosition::new(position),
                    entry: None,
                };
                state::write(&state::sidecar_path(&archive_path), &pending)?;
            }
            let rel = archive_path
                .strip_prefix(&cycle_dir)
                .unwrap_or(&archive_path);
            let key = format!("{cycle}/{}", rel.to_string_lossy());
            log::info!("storing {key}, left unstored by an earlier run");
            let outcome = upload_pending(
                storage,
                &archive_path,
                &key,
                &cycle_dir,
                settings,
                progress,
                None,
            )
            .await;
            match outcome {
                Ok(_) => stored.push(key),
                // The bucket holds other bytes there: the old archive waits for an operator
                // (said on every run), and backups go on.
                Err(e) if left_by_old && e.kind() == ErrorKind::Integrity => {
                    log::warn!("{e}");
                    let _ = std::fs::remove_file(state::sidecar_path(&archive_path));
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(stored)
}

/// Where B stood for an archive the old scripts left without sidecar: they advanced B whether the
/// upload succeeded or not. Such an archive is finished, and B covers it (an increment whose
/// newest entry is at or before B; a dump, once B exists). A run of ours writes the sidecar before
/// B may pass the archive, so one of ours without sidecar is never covered: `None`.
async fn left_by_old_scripts(cycle_dir: &Path, archive_path: &Path) -> Option<Position> {
    let b = read_b(cycle_dir).ok()??;
    let increment = layout::dir_of_archive(archive_path).parent() != Some(cycle_dir);
    let path = archive_path.to_path_buf();
    let newest = tokio::task::spawn_blocking(move || newest_entry(&path))
        .await
        .ok()?
        .ok()?;
    match (increment, newest) {
        (false, _) => Some(b),
        (true, Some(newest)) if newest <= b => Some(newest),
        _ => None,
    }
}

/// Reads `archive` through; the timestamp of the last entry of its `oplog.bson`, if it has one.
fn newest_entry(archive: &Path) -> Result<Option<Position>> {
    let mut newest = None;
    crate::archive::read_through_with(archive, |path, reader| {
        if path.file_name() == Some(std::ffi::OsStr::new(layout::OPLOG_FILE)) {
            let mut docs = crate::mongo::bson_file::BsonReader::new(reader, path);
            while let Some(doc) = docs.next_document()? {
                if let Ok(ts) = doc.get_timestamp("ts") {
                    newest = Some(Position::from(ts));
                }
            }
        }
        Ok(())
    })?;
    Ok(newest)
}

/// Increment directories written after the cycle's B without an archive beside them: a run died
/// while capturing or archiving them, and B does not cover them (their range is captured again).
fn remove_unfinished_increments(cycle_dir: &Path) {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(b_time) = mtime(&state::state_b_path(cycle_dir)) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(layout::increments_dir(cycle_dir)) else {
        return;
    };
    for dir in entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
    {
        let archives = layout::existing_archives_of(&dir);
        let pending = archives.iter().any(|a| state::sidecar_path(a).exists());
        let unfinished = !pending && mtime(&dir).is_some_and(|t| t > b_time);
        if unfinished {
            log::info!(
                "removing {}, left unfinished by a run that died",
                dir.display()
            );
            let _ = std::fs::remove_dir_all(&dir);
            for archive in &archives {
                let _ = std::fs::remove_file(archive);
            }
        }
    }
}
