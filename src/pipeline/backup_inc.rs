//! Incremental mode (`is_inc_backup=1`), COMPAT §2 with its bugs fixed. One run:
//! 1. store archives a previous run left unstored (in order), advancing B as each is verified
//!    (`pending`);
//! 2. pick the cycle from state A (a new one when missing, expired, or when the oplog rolled past B);
//! 3. a cycle without B gets its full dump, with P read *before* the dump (writes during the dump are
//!    replayed later; replay is idempotent); otherwise the oplog range (B, newest] is captured;
//! 4. B (and A for a new cycle) advance only once the data is durable: fsynced locally and, when
//!    uploading, verified in the bucket. A failed upload leaves archive + `.pos.json` for the next run.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Local};

use super::open_storage;
use super::overlap::{self, DumpJob};
use super::pending::{flush_pending, upload_pending};
use crate::archive::ArchiveStats;
use crate::config::Settings;
use crate::error::{Error, ErrorKind, Result};
use crate::layout;
use crate::manifest::{self, ArchiveKind};
use crate::mongo::dump::CollectionDump;
use crate::mongo::{connect, oplog, Mongo};
use crate::position::Position;
use crate::progress::Progress;
use crate::state::{self, read_b, write_b, CycleInfo, OplogPosition, Pending};
use crate::storage::{Storage, VerifiedUpload};

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
    /// The archive this run stored (none without upload or with nothing new).
    pub stored: Option<VerifiedUpload>,
}

/// One run; a cycle lasts `period_days` (`full_backup_period`).
pub async fn run(
    settings: &Settings,
    period_days: u32,
    now: DateTime<Local>,
    progress: &Progress,
) -> Result<IncReport> {
    let root = settings.db_backup_root_path.clone();
    let storage = match &settings.storage {
        Some(target) => Some(open_storage(target, settings).await?),
        None => None,
    };
    let mongo = connect(&settings.mongo).await?;
    oplog::require_replica_set(&mongo).await?;
    crate::private::create_dir(&root)?;
    state::check_root(&root)?;
    let flushed = match &storage {
        Some(s) => flush_pending(s.as_ref(), &root, settings, progress).await?,
        None => Vec::new(),
    };

    let info: Option<CycleInfo> = state::read(&state::state_a_path(&root))?;
    let info = adopt_stored_cycle(settings, info)?;
    let (cycle, position) = choose_cycle(
        settings,
        period_days,
        info.as_ref(),
        &mongo,
        storage.as_deref(),
        now,
    )
    .await?;
    let cycle_dir = root.join(&cycle);
    crate::private::create_dir(&cycle_dir)?;

    let run = Run {
        settings,
        storage: storage.as_deref(),
        mongo: &mongo,
        info: info.as_ref(),
        now,
        progress,
    };
    let Some(from) = position else {
        return run.dump_cycle(cycle, flushed).await;
    };

    let to = oplog::newest(&mongo).await?.unwrap_or(from);
    if to <= from {
        log::info!("cycle {cycle}: nothing new since {from}");
        return Ok(IncReport {
            cycle,
            outcome: IncOutcome::NothingNew,
            position: from,
            flushed,
            stored: None,
        });
    }
    if storage.is_some() {
        remove_leftovers(&root, &settings.cycle_prefix, &cycle);
    }
    let name = unique_oplog_name(&cycle_dir, &cycle, storage.as_deref(), now).await?;
    let dir = layout::increment_dir(&cycle_dir, &name);
    crate::private::create_dir(&dir)?;
    let captured = oplog::capture(
        &mongo,
        &settings.db_name,
        from,
        to,
        &layout::oplog_file(&dir),
        progress,
    )
    .await?;
    crate::hooks::crash_point("after_capture");
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
    if !captured.renamed_in.is_empty() {
        // Their documents are in no dump and no increment of this cycle: only a new full dump
        // holds them.
        let _ = std::fs::remove_dir_all(&dir);
        log::warn!(
            "cycle {cycle}: collections were renamed into {} from another database ({}): starting a new cycle with a full dump",
            settings.db_name,
            captured.renamed_in.join(", ")
        );
        let cycle = new_cycle_name(settings, storage.as_deref(), now).await?;
        crate::private::create_dir(&root.join(&cycle))?;
        return run.dump_cycle(cycle, flushed).await;
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
            stored: None,
        });
    }
    log::info!(
        "cycle {cycle}: captured {} oplog entries ({} bytes) in ({from}, {to}] into {name}",
        captured.entries,
        captured.bytes,
    );
    let stored = match &storage {
        Some(s) => {
            let key = layout::increment_key(&cycle, &name, settings.archive_format());
            let mut entry = super::manifest_entry(ArchiveKind::Increment, &[], settings)?;
            entry.oplog_from = Some(from);
            entry.oplog_to = Some(to);
            entry.entries = Some(captured.entries);
            entry.codec = Some(settings.codec.kind);
            let pending = Pending {
                position: OplogPosition::new(to),
                entry: Some(entry),
            };
            store_with_position(
                s.as_ref(),
                &dir,
                &key,
                pending,
                &cycle_dir,
                settings,
                progress,
            )
            .await
            .map(Some)?
        }
        None => {
            write_b(&cycle_dir, to)?;
            None
        }
    };
    Ok(IncReport {
        cycle,
        outcome: IncOutcome::Increment {
            name,
            entries: captured.entries,
        },
        position: to,
        flushed,
        stored,
    })
}

/// What one run works with.
struct Run<'a> {
    settings: &'a Settings,
    storage: Option<&'a dyn Storage>,
    mongo: &'a Mongo,
    /// State A as the run found it.
    info: Option<&'a CycleInfo>,
    now: DateTime<Local>,
    progress: &'a Progress,
}

impl Run<'_> {
    /// The full dump that starts `cycle`; then state A names it, old cycles are pruned and the
    /// local folders no run needs are removed.
    async fn dump_cycle(&self, cycle: String, flushed: Vec<String>) -> Result<IncReport> {
        let settings = self.settings;
        let root = &settings.db_backup_root_path;
        let cycle_dir = root.join(&cycle);
        let (documents, p, stored) = full_dump(
            self.mongo,
            settings,
            self.storage,
            &cycle_dir,
            self.progress,
        )
        .await?;
        let new_cycle = self
            .info
            .map(|i| i.last_circle_backup_dir_name != cycle)
            .unwrap_or(true);
        if new_cycle {
            crate::hooks::crash_point("before_state_a");
            state::write(
                &state::state_a_path(root),
                &CycleInfo {
                    last_circle_backup_time: self.now.timestamp().to_string(),
                    last_circle_backup_dir_name: cycle.clone(),
                },
            )?;
            if let (Some(s), keep @ 1..) = (self.storage, settings.keep_cycles) {
                // The new cycle is stored and recorded: retention failing (a cron key that may
                // not delete, a bucket that refuses) is said, not a failed backup.
                let pruned =
                    super::prune::prune_cycles(s, settings, keep as usize, Some(&cycle), false);
                if let Err(e) = pruned.await {
                    log::warn!(
                        "keep_cycles={keep}: old cycles were not deleted: {e} (run `mongo-oss-backup prune` with a key that may delete)"
                    );
                }
            }
        }
        if self.storage.is_some() {
            remove_leftovers(root, &settings.cycle_prefix, &cycle);
        }
        Ok(IncReport {
            cycle,
            outcome: IncOutcome::FullDump { documents },
            position: p,
            flushed,
            stored,
        })
    }
}

/// A cycle newer than state A's whose full dump is stored and recorded (its folder has B, which is
/// written only then): the run that dumped it died before naming it in A. It becomes the current
/// cycle, as that run would have made it, so this run continues it instead of dumping again.
/// Without A there is nothing to compare with, and a new cycle starts, as the old scripts did
/// (deleting A is how their users forced a full dump).
fn adopt_stored_cycle(settings: &Settings, info: Option<CycleInfo>) -> Result<Option<CycleInfo>> {
    let Some(current) = &info else {
        return Ok(None);
    };
    let root = &settings.db_backup_root_path;
    let prefix = &settings.cycle_prefix;
    let started = |name: &str| {
        layout::name_time(name, prefix)
            .and_then(|t| t.and_local_timezone(Local).earliest())
            .map(|t| t.timestamp())
    };
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(info);
    };
    let newest = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| layout::is_cycle_name(name, prefix))
        .filter_map(|name| Some((started(&name)?, name)))
        .filter(|(_, name)| read_b(&root.join(name)).is_ok_and(|b| b.is_some()))
        .max();
    let Some((time, cycle)) = newest else {
        return Ok(info);
    };
    if started(&current.last_circle_backup_dir_name).is_some_and(|t| t >= time) {
        return Ok(info);
    }
    log::info!(
        "cycle {cycle}: its full dump is stored, so it is the current cycle (the run that dumped it died before saying so)"
    );
    let adopted = CycleInfo {
        last_circle_backup_time: time.to_string(),
        last_circle_backup_dir_name: cycle,
    };
    state::write(&state::state_a_path(root), &adopted)?;
    Ok(Some(adopted))
}

fn expired(info: &CycleInfo, period_days: u32, now: DateTime<Local>) -> bool {
    match info.started_at() {
        Some(t) => now.timestamp() - t > 86_400 * i64::from(period_days),
        None => true,
    }
}

/// The cycle this run works on and the position it is covered up to (`None`: it needs its full
/// dump). A new cycle when there is none, when it is older than `full_backup_period`, when the
/// oplog rolled past its position, or when its position is lost (`last.json` gone) and the
/// bucket's manifest cannot give it back: a cycle's name is never dumped into twice.
async fn choose_cycle(
    settings: &Settings,
    period_days: u32,
    info: Option<&CycleInfo>,
    mongo: &Mongo,
    storage: Option<&dyn Storage>,
    now: DateTime<Local>,
) -> Result<(String, Option<Position>)> {
    let root = &settings.db_backup_root_path;
    let current = match info {
        Some(i) if !expired(i, period_days, now) => Some(i.last_circle_backup_dir_name.clone()),
        Some(i) => {
            log::info!(
                "cycle {} is older than {period_days} days: starting a new cycle",
                i.last_circle_backup_dir_name,
            );
            None
        }
        None => None,
    };
    let new = || new_cycle_name(settings, storage, now);
    let Some(cycle) = current else {
        return Ok((new().await?, None));
    };
    let cycle_dir = root.join(&cycle);
    if let Some(s) = storage {
        stored_where_recorded(s, &cycle_dir, &cycle).await?;
    }
    let position = match read_b(&cycle_dir)? {
        Some(b) => Some(b),
        None => recover_position(storage, &cycle_dir, &cycle).await?,
    };
    let Some(b) = position else {
        log::warn!(
            "cycle {cycle} has lost its position ({} is missing) and the bucket cannot give it back: starting a new cycle with a full dump",
            state::state_b_path(&cycle_dir).display()
        );
        return Ok((new().await?, None));
    };
    if let Some(reason) = rolled_over(mongo, b).await? {
        log::warn!("{reason}; starting a new cycle with a full dump now");
        return Ok((new().await?, None));
    }
    Ok((cycle, Some(b)))
}

/// The position of a cycle whose `last.json` is gone, from its manifest in the bucket: the end of
/// its chain, when every increment's range is recorded. Written back to `last.json`.
async fn recover_position(
    storage: Option<&dyn Storage>,
    cycle_dir: &Path,
    cycle: &str,
) -> Result<Option<Position>> {
    let Some(storage) = storage else {
        return Ok(None);
    };
    let key = layout::cycle_manifest_key(cycle);
    let Some(bytes) = storage.read(&key).await? else {
        return Ok(None);
    };
    let manifest = manifest::Manifest::parse(&bytes, &key)?;
    let found = manifest
        .archives
        .iter()
        .map(|a| (a.key.clone(), Some(a.size)))
        .collect();
    let chain = crate::chain::check(&crate::chain::CycleFacts::gather(
        cycle,
        Some(&manifest),
        &found,
    ));
    let exact = chain.start.is_some()
        && chain.dump_problem.is_none()
        && chain
            .links
            .iter()
            .all(|l| l.problem.is_none() && l.to.is_some());
    let Some(end) = chain.end.filter(|_| exact) else {
        return Ok(None);
    };
    log::warn!(
        "cycle {cycle}: {} is missing; its manifest in the bucket gives its position back: {end}",
        state::state_b_path(cycle_dir).display()
    );
    write_b(cycle_dir, end)?;
    Ok(Some(end))
}

/// A cycle whose manifest was stored (its local copy says so) must find it in the bucket: if not,
/// this is not the bucket (or the share) the cycle went to, and increments stored here would be
/// missing from the real one.
async fn stored_where_recorded(storage: &dyn Storage, cycle_dir: &Path, cycle: &str) -> Result<()> {
    let local = cycle_dir.join(layout::MANIFEST_FILE);
    let key = layout::cycle_manifest_key(cycle);
    if local.exists() && storage.head(&key).await?.is_none() {
        return Err(Error::new(
            ErrorKind::StorageNotFound,
            format!(
                "{key} is missing from {}, though this cycle's manifest was stored there: is it the bucket (or the mounted share) the cycle went to?",
                storage.describe()
            ),
        ));
    }
    Ok(())
}

/// `<prefix><YYYYmmddHHMMSS>`, one second later while that name is taken locally or in the bucket.
async fn new_cycle_name(
    settings: &Settings,
    storage: Option<&dyn Storage>,
    now: DateTime<Local>,
) -> Result<String> {
    let mut t = now;
    loop {
        let name = layout::cycle_name(&settings.cycle_prefix, t);
        let local = settings.db_backup_root_path.join(&name).exists();
        let stored = match storage {
            Some(s) => !s.list(&layout::cycle_prefix_of(&name)).await?.is_empty(),
            None => false,
        };
        if !local && !stored {
            return Ok(name);
        }
        t += chrono::Duration::seconds(1);
    }
}

/// `oplog_<YYYYmmddHHMMSS>`, one second later while that name is taken, locally or in the bucket
/// (two runs in one second, a clock that stepped back): an increment never replaces another.
async fn unique_oplog_name(
    cycle_dir: &Path,
    cycle: &str,
    storage: Option<&dyn Storage>,
    now: DateTime<Local>,
) -> Result<String> {
    let mut t = now;
    loop {
        let name = layout::increment_name(t);
        let dir = layout::increment_dir(cycle_dir, &name);
        let local = dir.exists() || !layout::existing_archives_of(&dir).is_empty();
        let mut stored = false;
        if let Some(s) = storage {
            for format in layout::Format::ALL {
                stored |= s
                    .head(&layout::increment_key(cycle, &name, format))
                    .await?
                    .is_some();
            }
        }
        if !local && !stored {
            return Ok(name);
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
    progress: &Progress,
) -> Result<(u64, Position, Option<VerifiedUpload>)> {
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
    crate::private::create_dir(&dir)?;
    log::info!("cycle {}: full dump from position {p}", cycle_dir.display());
    let archive_path = layout::archive_path_for(&dir, settings.archive_format());
    let job = DumpJob {
        mongo,
        settings,
        dir: &dir,
        archive_path: &archive_path,
        allow_empty: true,
        progress,
    };
    let Some(storage) = storage else {
        let collections = overlap::dump_only(&job).await?;
        crate::hooks::crash_point("after_dump");
        write_b(cycle_dir, p)?;
        return Ok((collections.iter().map(|c| c.documents).sum(), p, None));
    };
    let cycle = cycle_dir
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let key = layout::cycle_full_key(&cycle, settings.archive_format());
    // The archive's position goes beside it before its upload may complete (`upload_pending`).
    let sidecar = state::sidecar_path(&archive_path);
    let seal = |collections: Vec<CollectionDump>, stats: ArchiveStats, crc64: Option<u64>| async move {
        let mut entry = super::manifest_entry(ArchiveKind::Full, &collections, settings)?;
        if let Some(crc64) = crc64 {
            // No local copy to compare with: what a later run checks the stored object against,
            // if this one dies between the upload and its record.
            entry.size = stats.archive_bytes;
            entry.crc64 = crc64.to_string();
        }
        entry.oplog_start = Some(p);
        entry.codec = Some(settings.codec.kind);
        // Documents were read at different moments after P: the copy is consistent only once
        // the increments replay past the newest entry at the dump's end, the earliest
        // restorable point.
        entry.oplog_end = oplog::newest(mongo).await?.filter(|end| *end >= p);
        let pending = Pending {
            position: OplogPosition::new(p),
            entry: Some(entry),
        };
        state::write(&sidecar, &pending)?;
        Ok((collections, ()))
    };
    // A key holding an archive already (stored by a run that died before its record) is
    // compared with the finished archive instead of being written over by a stream.
    let stream_to = match storage.head(&key).await? {
        None => Some((storage, key.as_str())),
        Some(stored) if !settings.local_copy => {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!(
                    "refusing to overwrite {key} in {}: it holds another archive ({} bytes)",
                    storage.describe(),
                    stored.size
                ),
            ))
        }
        Some(_) => None,
    };
    let dumped = overlap::dump_and_archive(&job, stream_to, seal).await?;
    let documents = dumped.collections.iter().map(|c| c.documents).sum();
    let stored = upload_pending(
        storage,
        &archive_path,
        &key,
        cycle_dir,
        settings,
        progress,
        dumped.streamed,
    )
    .await?;
    Ok((documents, p, Some(stored)))
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
    progress: &Progress,
) -> Result<VerifiedUpload> {
    let archive_path = layout::archive_path_for(dir, settings.archive_format());
    super::create_archive(dir, &archive_path, settings, progress).await?;
    crate::hooks::crash_point("after_archive");
    state::write(&state::sidecar_path(&archive_path), &pending)?;
    upload_pending(
        storage,
        &archive_path,
        key,
        cycle_dir,
        settings,
        progress,
        None,
    )
    .await
}

/// Local folders of other cycles once this run's work is stored: the previous cycle's, and what
/// runs that died left (a half-made dump of a cycle that never started). Their archives are in the
/// bucket (pending ones were stored first by this run). Only called when uploading: otherwise the
/// local folders are the only copy.
fn remove_leftovers(root: &Path, prefix: &str, current: &str) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == current || !layout::is_cycle_name(&name, prefix) || !entry.path().is_dir() {
            continue;
        }
        let dir = entry.path();
        let pending = walk_files(&dir)
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".pos.json"));
        if pending {
            continue;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => log::info!(
                "removed {}, a cycle folder no run needs any more",
                dir.display()
            ),
            Err(e) => log::warn!("cannot remove {}: {e}", dir.display()),
        }
    }
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if path.is_dir() {
                out.extend(walk_files(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}
