//! Incremental mode (`is_inc_backup=1`), COMPAT §2 with its bugs fixed. One run:
//! 1. store archives a previous run left unstored (in order), advancing B as each is verified;
//! 2. pick the cycle from state A (a new one when missing, expired, or when the oplog rolled past B);
//! 3. a cycle without B gets its full dump, with P read *before* the dump (writes during the dump are
//!    replayed later; replay is idempotent); otherwise the oplog range (B, newest] is captured;
//! 4. B (and A for a new cycle) advance only once the data is durable: fsynced locally and, when
//!    uploading, verified in the bucket. A failed upload leaves archive + `.pos.json` for the next run.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Local};

use super::{mongo_target, open_storage};
use crate::config::Settings;
use crate::error::{Error, ErrorKind, Result};
use crate::layout::{self, Key};
use crate::manifest::{self, ArchiveKind};
use crate::mongo::dump::{self, create_private_dir, DumpOptions};
use crate::mongo::{connect, oplog, Mongo};
use crate::position::Position;
use crate::state::{self, read_b, write_b, CycleInfo, OplogPosition, Pending};
use crate::storage::Storage;

/// What one incremental run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncOutcome {
    /// A new or unfinished cycle got its full dump.
    FullDump { documents: u64 },
    /// Entries of the range were captured into `oplog_<name>`.
    Increment { name: String, entries: u64 },
    /// Nothing was written since the last run.
    NothingNew,
}

#[derive(Debug, Clone)]
pub struct IncReport {
    pub cycle: String,
    pub outcome: IncOutcome,
    /// The position the cycle is now covered up to.
    pub position: Position,
    /// Archives of earlier runs stored by this one.
    pub flushed: Vec<String>,
}

pub async fn run(settings: &Settings, now: DateTime<Local>) -> Result<IncReport> {
    let root = settings.db_backup_root_path.clone();
    let storage = match &settings.storage {
        Some(target) => Some(open_storage(target, settings).await?),
        None => None,
    };
    let mongo = connect(&mongo_target(settings)).await?;
    oplog::require_replica_set(&mongo).await?;
    create_private_dir(&root)?;
    let flushed = match &storage {
        Some(s) => flush_pending(s.as_ref(), &root, settings).await?,
        None => Vec::new(),
    };

    let info: Option<CycleInfo> = state::read(&state::state_a_path(&root))?;
    let mut cycle = match &info {
        Some(i) if !expired(i, settings, now) => i.last_circle_backup_dir_name.clone(),
        Some(i) => {
            log::info!(
                "cycle {} is older than {} days: starting a new cycle",
                i.last_circle_backup_dir_name,
                settings.full_backup_period_days
            );
            new_cycle_name(settings, now)
        }
        None => new_cycle_name(settings, now),
    };
    let mut position = read_b(&root.join(&cycle))?;
    if let Some(b) = position {
        if let Some(reason) = rolled_over(&mongo, b).await? {
            log::warn!("{reason}; starting a new cycle with a full dump now");
            cycle = new_cycle_name(settings, now);
            position = None;
        }
    }
    let cycle_dir = root.join(&cycle);
    create_private_dir(&cycle_dir)?;

    let Some(from) = position else {
        let (documents, p) = full_dump(&mongo, settings, storage.as_deref(), &cycle_dir).await?;
        let new_cycle = info
            .as_ref()
            .map(|i| i.last_circle_backup_dir_name != cycle)
            .unwrap_or(true);
        if new_cycle {
            super::crash_point("before_state_a");
            state::write(
                &state::state_a_path(&root),
                &CycleInfo {
                    last_circle_backup_time: now.timestamp().to_string(),
                    last_circle_backup_dir_name: cycle.clone(),
                },
            )?;
            if let Some(old) = info
                .as_ref()
                .map(|i| root.join(&i.last_circle_backup_dir_name))
            {
                remove_previous_cycle(&old, storage.is_some());
            }
            if let (Some(s), keep @ 1..) = (&storage, settings.keep_cycles) {
                let prefix = &settings.cycle_prefix;
                super::prune::prune_cycles(s.as_ref(), prefix, keep as usize, Some(&cycle), false)
                    .await?;
            }
        }
        return Ok(IncReport {
            cycle,
            outcome: IncOutcome::FullDump { documents },
            position: p,
            flushed,
        });
    };

    let to = oplog::newest(&mongo).await?.unwrap_or(from);
    if to <= from {
        log::info!("cycle {cycle}: nothing new since {from}");
        return Ok(IncReport {
            cycle,
            outcome: IncOutcome::NothingNew,
            position: from,
            flushed,
        });
    }
    let name = unique_oplog_name(&cycle_dir, now);
    let dir = layout::increment_dir(&cycle_dir, &name);
    create_private_dir(&dir)?;
    let captured = oplog::capture(
        &mongo,
        &settings.db_name,
        from,
        to,
        &layout::oplog_file(&dir),
    )
    .await?;
    super::crash_point("after_capture");
    if let Some(reason) = rolled_over(&mongo, from).await? {
        // Entries after B may have been pruned while we read: this increment could have a hole.
        let _ = std::fs::remove_dir_all(&dir);
        return Err(Error::new(
            ErrorKind::Mongo,
            format!(
                "{reason} during the capture; nothing was stored, the next run starts a new cycle"
            ),
        ));
    }
    if captured.entries == 0 {
        let _ = std::fs::remove_dir_all(&dir);
        if let Some(s) = &storage {
            // The manifest records the empty range before B skips it, so that the chain of
            // increments still joins end to end for a restore.
            let place = manifest::Place::of_cycle(&cycle_dir, &cycle, &settings.db_name);
            manifest::update(s.as_ref(), &place, Some(from), |m| {
                m.record_empty_range(from, to)
            })
            .await?;
        }
        write_b(&cycle_dir, to)?;
        log::info!("cycle {cycle}: no entry of the database in ({from}, {to}]");
        return Ok(IncReport {
            cycle,
            outcome: IncOutcome::NothingNew,
            position: to,
            flushed,
        });
    }
    log::info!(
        "cycle {cycle}: captured {} oplog entries ({} bytes) in ({from}, {to}] into {name}",
        captured.entries,
        captured.bytes,
    );
    match &storage {
        Some(s) => {
            let key = layout::increment_key(&cycle, &name);
            let mut entry = super::manifest_entry(ArchiveKind::Increment, &[]);
            entry.oplog_from = Some(from);
            entry.oplog_to = Some(to);
            entry.entries = Some(captured.entries);
            let pending = Pending {
                position: OplogPosition::new(to),
                entry: Some(entry),
            };
            store_with_position(s.as_ref(), &dir, &key, pending, &cycle_dir, settings).await?
        }
        None => write_b(&cycle_dir, to)?,
    }
    Ok(IncReport {
        cycle,
        outcome: IncOutcome::Increment {
            name,
            entries: captured.entries,
        },
        position: to,
        flushed,
    })
}

fn expired(info: &CycleInfo, settings: &Settings, now: DateTime<Local>) -> bool {
    match info.started_at() {
        Some(t) => now.timestamp() - t > 86_400 * i64::from(settings.full_backup_period_days),
        None => true,
    }
}

fn new_cycle_name(settings: &Settings, now: DateTime<Local>) -> String {
    layout::cycle_name(&settings.cycle_prefix, now)
}

/// `oplog_<YYYYmmddHHMMSS>`, one second later when that name is taken (two runs in one second).
fn unique_oplog_name(cycle_dir: &Path, now: DateTime<Local>) -> String {
    let mut t = now;
    loop {
        let name = layout::increment_name(t);
        let dir = layout::increment_dir(cycle_dir, &name);
        if !dir.exists() && !layout::archive_path_for(&dir).exists() {
            return name;
        }
        t += chrono::Duration::seconds(1);
    }
}

/// Why the oplog no longer covers `b`, if it does not.
async fn rolled_over(mongo: &Mongo, b: Position) -> Result<Option<String>> {
    Ok(match oplog::oldest(mongo).await? {
        Some(oldest) if oldest > b => Some(format!(
            "the oplog rolled over: its oldest entry {oldest} is newer than the cycle's position {b}"
        )),
        _ => None,
    })
}

/// The cycle's full dump into `<cycle>/full_backup/<db>`, stored, then B := P (P read first).
async fn full_dump(
    mongo: &Mongo,
    settings: &Settings,
    storage: Option<&dyn Storage>,
    cycle_dir: &Path,
) -> Result<(u64, Position)> {
    let p = oplog::newest(mongo).await?.ok_or_else(|| {
        Error::new(
            ErrorKind::Mongo,
            "the oplog is empty: cannot fix the cycle's start",
        )
    })?;
    let dir = layout::full_dir(cycle_dir);
    if dir.exists() {
        // Left by a run that died during the dump: B is missing, so it is incomplete.
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io("remove", &dir, e))?;
    }
    create_private_dir(&dir)?;
    let opts = DumpOptions {
        allow_empty: true,
        ..Default::default()
    };
    log::info!("cycle {}: full dump from position {p}", cycle_dir.display());
    let collections = match dump::dump(mongo, &settings.db_name, &dir, &opts).await {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let documents = collections.iter().map(|c| c.documents).sum();
    let mut entry = super::manifest_entry(ArchiveKind::Full, &collections);
    entry.oplog_start = Some(p);
    // Documents were read at different moments after P: the copy is consistent only once the
    // increments replay past the newest entry at the dump's end, the earliest restorable point.
    entry.oplog_end = oplog::newest(mongo).await?.filter(|end| *end >= p);
    super::crash_point("after_dump");
    match storage {
        Some(s) => {
            let cycle = cycle_dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            store_with_position(
                s,
                &dir,
                &layout::cycle_full_key(&cycle),
                Pending {
                    position: OplogPosition::new(p),
                    entry: Some(entry),
                },
                cycle_dir,
                settings,
            )
            .await?;
        }
        None => write_b(cycle_dir, p)?,
    }
    Ok((documents, p))
}

/// Archive `dir`, record the position it brings B to beside the archive, upload and verify it,
/// then write B and remove the local copies. A failure leaves archive + sidecar for the next run.
async fn store_with_position(
    storage: &dyn Storage,
    dir: &Path,
    key: &str,
    pending: Pending,
    cycle_dir: &Path,
    settings: &Settings,
) -> Result<()> {
    let archive_path = layout::archive_path_for(dir);
    let level = settings.compression_level;
    super::create_archive(dir, &archive_path, level).await?;
    super::crash_point("after_archive");
    state::write(&state::sidecar_path(&archive_path), &pending)?;
    upload_pending(storage, &archive_path, key, cycle_dir, settings).await
}

/// Uploads one archive whose sidecar holds its position, records it in the cycle's manifest, then
/// advances B and cleans up.
async fn upload_pending(
    storage: &dyn Storage,
    archive_path: &Path,
    key: &str,
    cycle_dir: &Path,
    settings: &Settings,
) -> Result<()> {
    let sidecar = state::sidecar_path(archive_path);
    let pending: Pending = state::read(&sidecar)?.ok_or_else(|| {
        Error::new(
            ErrorKind::Internal,
            format!("{} is missing", sidecar.display()),
        )
    })?;
    let position = pending.position.position(&sidecar)?;
    let done = super::upload(storage, archive_path, key).await?;
    super::crash_point("after_upload");
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
    let entry = pending
        .entry
        .unwrap_or_else(|| super::manifest_entry(kind, &[]));
    let place = manifest::Place::of_cycle(cycle_dir, cycle, &settings.db_name);
    super::record_in_manifest(storage, &place, entry, &done).await?;
    super::crash_point("after_manifest");
    let newer = read_b(cycle_dir)?.is_none_or(|b| position > b);
    if newer {
        write_b(cycle_dir, position)?;
    }
    let file_name = archive_path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    let dir = archive_path.with_file_name(file_name.trim_end_matches(layout::ARCHIVE_SUFFIX));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::remove_file(archive_path).map_err(|e| Error::io("remove", archive_path, e))?;
    std::fs::remove_file(&sidecar).map_err(|e| Error::io("remove", &sidecar, e))?;
    Ok(())
}

/// Stores, in order, the archives earlier runs could not store (those with a `.pos.json`), and
/// removes what a run that died left half-made (archives without sidecar, their directories).
async fn flush_pending(
    storage: &dyn Storage,
    root: &Path,
    settings: &Settings,
) -> Result<Vec<String>> {
    let mut cycles: Vec<PathBuf> = match std::fs::read_dir(root) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(&settings.cycle_prefix))
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
        let mut archives = vec![layout::archive_path_for(&layout::full_dir(&cycle_dir))];
        if let Ok(entries) = std::fs::read_dir(layout::increments_dir(&cycle_dir)) {
            let mut incs: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(layout::ARCHIVE_SUFFIX))
                .collect();
            incs.sort();
            archives.extend(incs);
        }
        remove_unfinished_increments(&cycle_dir);
        for archive_path in archives.into_iter().filter(|a| a.exists()) {
            if !state::sidecar_path(&archive_path).exists() {
                // Died between writing the archive and its sidecar: B never covered it.
                let _ = std::fs::remove_file(&archive_path);
                continue;
            }
            let rel = archive_path
                .strip_prefix(&cycle_dir)
                .unwrap_or(&archive_path);
            let key = format!("{cycle}/{}", rel.to_string_lossy());
            log::info!("storing {key}, left unstored by an earlier run");
            upload_pending(storage, &archive_path, &key, &cycle_dir, settings).await?;
            stored.push(key);
        }
    }
    Ok(stored)
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
        let archive = layout::archive_path_for(&dir);
        let unfinished =
            !state::sidecar_path(&archive).exists() && mtime(&dir).is_some_and(|t| t > b_time);
        if unfinished {
            log::info!(
                "removing {}, left unfinished by a run that died",
                dir.display()
            );
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_file(&archive);
        }
    }
}

/// After a new cycle's full backup is stored, the previous cycle's local directory goes. When not
/// uploading it holds the only copy of that cycle, so it stays.
fn remove_previous_cycle(dir: &Path, uploading: bool) {
    if uploading && dir.is_dir() {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => log::info!(
                "removed the previous cycle's local directory {}",
                dir.display()
            ),
            Err(e) => log::warn!("cannot remove {}: {e}", dir.display()),
        }
    }
}
