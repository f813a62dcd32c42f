//! restore_inc.py, COMPAT §4, with the chain proven before any write: read the cycle's manifest and
//! what the bucket (or the local folder) holds, check the chain (`chain`), download the dump and
//! the increments the restore needs (sizes and CRC64 against the manifest, archives read to their
//! end), read every oplog.bson through (order, range, count), check again; only then restore
//! `<cycle>/full_backup/<db_name>` and replay the increments in chain order, optionally only up to
//! a point in time. Anything that does not match is refused with one line, before the server is
//! touched.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use super::selective::{self, NsOptions, SelectivePlan};
use super::{download, extract_beside, open_source_storage};
use crate::chain::{self, CycleFacts, Plan, PlanOptions};
use crate::codec::Kind;
use crate::config::Settings;
use crate::crypt::Identity;
use crate::error::{Error, ErrorKind, Result};
use crate::layout::{self, Key};
use crate::manifest::{ArchiveEntry, Manifest};
use crate::mongo::connect;
use crate::mongo::replay::engine::{ReplayOptions, ReplaySummary};
use crate::mongo::replay::{replay_files, OplogFile};
use crate::mongo::restore::{restore_dump_root, restore_selected, DatabaseRestore, RestoreOptions};
use crate::mongo::staged::Staging;
use crate::position::Position;
use crate::progress::Progress;
use crate::storage::Storage;

#[derive(Debug, Clone)]
pub struct RestoreIncRequest {
    pub cycle: String,
    pub local_temp: PathBuf,
    pub already_downloaded: bool,
    pub drop_existing: bool,
    pub target_db: Option<String>,
    pub until: Option<Position>,
    /// List what would be applied; touch no server.
    pub dry_run: bool,
    pub skip_unknown: bool,
    /// Replay the increments over the database as it is, without restoring the full dump first.
    pub oplog_only: bool,
    /// Restore up to the last point before the first gap instead of refusing.
    pub allow_gap: bool,
    /// Only these collections, possibly renamed (`selective`).
    pub ns: NsOptions,
    /// Download and extract the dump into `local_temp` before restoring it (kept there:
    /// `already_downloaded` can restore from it again), instead of restoring it as it downloads.
    pub download_first: bool,
}

/// One increment of the plan, as read from disk.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IncrementPlan {
    pub name: String,
    pub entries: u64,
    /// Entries up to `until`, by kind.
    pub entries_by_op: BTreeMap<String, u64>,
    pub first: Option<Position>,
    pub last: Option<Position>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreIncReport {
    pub databases: Vec<DatabaseRestore>,
    pub replay: ReplaySummary,
    pub plan: Vec<IncrementPlan>,
    /// The proven chain: start, earliest point, end, where `--allow-gap` stopped, what could not
    /// be checked.
    pub chain: Plan,
    /// The point the database now reflects (`until` when it stopped there, else the plan's end).
    pub reached: Option<Position>,
    /// A selective restore: the collections, their targets and their entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectivePlan>,
    pub seconds: f64,
}

pub async fn run(
    settings: &Settings,
    req: &RestoreIncRequest,
    progress: &Progress,
) -> Result<RestoreIncReport> {
    let started = Instant::now();
    if !req.ns.is_empty() && req.oplog_only {
        return Err(Error::config(
            "--oplog-only replays over the database as it is; a selection (--ns-*) restores from the dump",
        ));
    }
    let selection = req.ns.selection()?;
    let opts = PlanOptions {
        until: req.until,
        allow_gap: req.allow_gap,
        with_dump: !req.oplog_only,
    };
    let storage = match req.already_downloaded {
        true => None,
        false => Some(open_source_storage(settings, "restoring the cycle").await?),
    };
    // The whole dump, from the bucket: restored as it downloads (`restore_stream`), while the
    // increments download and are proven; it is put in place only if both succeed.
    let stream_dump = storage.is_some()
        && !req.download_first
        && !req.dry_run
        && !req.oplog_only
        && selection.is_everything();
    let mongo = match stream_dump {
        true => Some(connect(&settings.restore_mongo).await?),
        false => None,
    };
    let dump_opts = RestoreOptions {
        drop_existing: req.drop_existing,
        progress: progress.clone(),
        ..Default::default()
    };
    let listed = list_cycle(storage.as_deref(), &req.cycle, &req.local_temp, &opts).await?;
    let spool_dir = super::restore_stream::spool_dir(&req.local_temp);
    let (prepared, staged) = match (&mongo, storage.as_deref(), listed.dump()) {
        (Some(mongo), Some(storage), Some((key, recorded))) => {
            log::info!(
                "restoring {key} from {} as it downloads, while the increments download",
                storage.describe()
            );
            let dump = super::restore_stream::StreamedDump {
                storage,
                key: &key,
                recorded: recorded.as_ref(),
                top: layout::FULL_DIR,
                db_name: &settings.db_name,
                target_db: req.target_db.as_deref(),
                db_prefix: None,
                missing_is_empty: true,
                identity: settings.identity.clone(),
                spool_dir: spool_dir.clone(),
            };
            let identity = settings.identity.clone();
            let mut staging = Staging::default();
            let stop = staging.stopper();
            let outcome = {
                let prove = bring_and_prove(Some(storage), listed, &opts, identity, true, progress);
                let stage =
                    super::restore_stream::stage(mongo, dump, &dump_opts, progress, &mut staging);
                tokio::pin!(prove, stage);
                // A refused chain calls the dump's restore off at its next batch.
                tokio::select! {
                    proved = &mut prove => match proved {
                        Ok(prepared) => stage.await.map(|staged| (prepared, staged)),
                        Err(e) => {
                            log::warn!("the chain is refused: calling the dump's restore off, dropping what it wrote");
                            stop.store(true, std::sync::atomic::Ordering::Relaxed);
                            let _ = stage.await;
                            Err(e)
                        }
                    },
                    staged = &mut stage => match staged {
                        Ok(staged) => prove.await.map(|prepared| (prepared, staged)),
                        Err(e) => Err(e),
                    },
                }
            };
            match outcome {
                Ok((prepared, staged)) => (prepared, Some((staged, staging))),
                Err(e) => {
                    super::restore_stream::finish(mongo, staging, &spool_dir).await;
                    return Err(e);
                }
            }
        }
        _ => {
            let identity = settings.identity.clone();
            let prepared =
                bring_and_prove(storage.as_deref(), listed, &opts, identity, false, progress)
                    .await?;
            (prepared, None)
        }
    };
    let mut report = RestoreIncReport {
        plan: prepared.increments.clone(),
        chain: prepared.plan.clone(),
        ..Default::default()
    };
    for note in &prepared.plan.notes {
        log::warn!("{}: {note}", req.cycle);
    }
    if let Some(stopped) = &prepared.plan.stopped {
        log::warn!("{}: {stopped}", req.cycle);
    }
    let dump_root = layout::full_dir(&prepared.cycle_dir);
    if !selection.is_everything() {
        let manifest = Manifest::read_local(&prepared.cycle_dir.join(layout::MANIFEST_FILE))
            .ok()
            .flatten()
            .map(|mut m| m.open_sealed(settings.identity()).map(|()| m))
            .transpose()?;
        report.selection = Some(
            selective::plan(
                &req.ns,
                req.target_db.as_deref(),
                &settings.db_name,
                &dump_root,
                manifest.as_ref(),
                &prepared.oplog_files(),
                req.until,
            )
            .await?,
        );
    }
    if req.dry_run {
        report.reached = reached(&prepared.plan, req.until);
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    let mongo = match mongo {
        Some(mongo) => mongo,
        None => connect(&settings.restore_mongo).await?,
    };
    if let Some(plan) = &report.selection {
        selective::prepare_targets(&mongo, plan, req.drop_existing).await?;
        let opts = RestoreOptions {
            progress: progress.clone(),
            ..Default::default()
        };
        report.databases = restore_selected(&mongo, &dump_root, &plan.dump_pairs, &opts).await?;
    } else if let Some((staged, mut staging)) = staged {
        let committed = staged.commit(&mongo, &mut staging, &dump_opts).await;
        super::restore_stream::finish(&mongo, staging, &spool_dir).await;
        report.databases = committed?;
    } else if !req.oplog_only {
        let opts = RestoreOptions {
            drop_existing: req.drop_existing,
            progress: progress.clone(),
            ..Default::default()
        };
        report.databases = restore_dump_root(
            &mongo,
            &dump_root,
            &settings.db_name,
            req.target_db.as_deref(),
            &opts,
            true,
        )
        .await?;
    }
    report.replay = replay_files(
        &mongo,
        &prepared.oplog_files(),
        ReplayOptions {
            source_db: settings.db_name.clone(),
            target_db: req.target_db.clone(),
            db_prefix: None,
            until: req.until,
            skip_unknown: req.skip_unknown,
            progress: progress.clone(),
            routes: report.selection.as_ref().map(SelectivePlan::replay_routes),
        },
    )
    .await?;
    if let (Some(until), Some(end)) = (req.until, prepared.plan.cycle_end) {
        // The plan leaves out the increments wholly after `until`: the replay stopped there too.
        report.replay.stopped_at_until |= until < end;
    }
    report.reached = reached(&prepared.plan, req.until);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The point a restore of `plan` reaches: `until` when it falls inside the plan, else its end.
fn reached(plan: &Plan, until: Option<Position>) -> Option<Position> {
    match (until, plan.end) {
        (Some(u), Some(end)) => Some(u.min(end)),
        (u, end) => end.or(u),
    }
}

/// A cycle on the local disk whose chain is proven for a restore.
#[derive(Debug, Clone)]
pub struct PreparedCycle {
    pub cycle_dir: PathBuf,
    pub plan: Plan,
    /// The plan's increments as read from their oplog.bson.
    pub increments: Vec<IncrementPlan>,
}

impl PreparedCycle {
    /// The plan's oplog files in replay order.
    pub fn oplog_files(&self) -> Vec<OplogFile> {
        self.plan
            .increments
            .iter()
            .map(|link| OplogFile {
                path: layout::oplog_file(&layout::increment_dir(&self.cycle_dir, &link.name)),
                label: link.name.clone(),
                skip_through: link.skip_through,
            })
            .collect()
    }
}

/// Brings cycle `cycle` into `<local_temp>/<cycle>/` (from the bucket, or as it is there already
/// when `storage` is `None`) and proves its chain for `opts`: one `Integrity` line otherwise.
/// Sealed archives are opened with `identity`.
pub async fn prepare(
    storage: Option<&dyn Storage>,
    cycle: &str,
    local_temp: &Path,
    opts: &PlanOptions,
    identity: Option<Arc<Identity>>,
    progress: &Progress,
) -> Result<PreparedCycle> {
    let listed = list_cycle(storage, cycle, local_temp, opts).await?;
    bring_and_prove(storage, listed, opts, identity, false, progress).await
}

/// What the bucket's listing and the cycle's manifest (or the local folder) say of a cycle,
/// already checked for `opts` as far as they go.
pub struct ListedCycle {
    cycle_dir: PathBuf,
    facts: CycleFacts,
    manifest: Option<Manifest>,
}

impl ListedCycle {
    /// The full dump's key and its manifest entry.
    pub fn dump(&self) -> Option<(String, Option<ArchiveEntry>)> {
        let key = self.facts.dump.key.clone()?;
        let recorded = self.manifest.as_ref().and_then(|m| m.entry(&key)).cloned();
        Some((key, recorded))
    }
}

/// The first half of `prepare`: the facts, and what they already refuse (before any download).
pub async fn list_cycle(
    storage: Option<&dyn Storage>,
    cycle: &str,
    local_temp: &Path,
    opts: &PlanOptions,
) -> Result<ListedCycle> {
    let cycle_dir = local_temp.join(cycle);
    let Some(storage) = storage else {
        let facts = local_facts(&cycle_dir, cycle)?;
        return Ok(ListedCycle {
            cycle_dir,
            facts,
            manifest: None,
        });
    };
    let (facts, manifest) = bucket_facts(storage, cycle).await?;
    if let Some(m) = &manifest {
        // Kept beside the folders: a later restore from them (`--downloaded`) checks them
        // against it too.
        crate::private::create_dir(&cycle_dir)?;
        crate::state::write_atomic(
            &cycle_dir.join(layout::MANIFEST_FILE),
            m.to_json().as_bytes(),
        )?;
    }
    chain::check(&facts).plan(opts)?;
    Ok(ListedCycle {
        cycle_dir,
        facts,
        manifest,
    })
}

/// The second half of `prepare`: downloads what the plan needs (the dump too, unless
/// `dump_streamed`: a streamed restore reads and checks it), reads every increment through and
/// proves the chain.
pub async fn bring_and_prove(
    storage: Option<&dyn Storage>,
    listed: ListedCycle,
    opts: &PlanOptions,
    identity: Option<Arc<Identity>>,
    dump_streamed: bool,
    progress: &Progress,
) -> Result<PreparedCycle> {
    let ListedCycle {
        cycle_dir,
        mut facts,
        manifest,
    } = listed;
    if let Some(storage) = storage {
        let plan = chain::check(&facts).plan(opts)?;
        let fetched = PlanOptions {
            with_dump: opts.with_dump && !dump_streamed,
            ..*opts
        };
        fetch(
            storage,
            &cycle_dir,
            manifest.as_ref(),
            &plan,
            &fetched,
            identity,
            &mut facts,
            progress,
        )
        .await?;
    }
    let mut read: HashMap<String, IncrementPlan> = HashMap::new();
    for inc in facts.increments.iter_mut().filter(|i| i.present) {
        let path = layout::oplog_file(&layout::increment_dir(&cycle_dir, &inc.name));
        if !path.exists() {
            // Not brought here: an increment past `until`, or one past a break.
            continue;
        }
        match crate::mongo::oplog::summarize_file(&path, opts.until) {
            Ok((contents, by_op)) => {
                inc.contents = Some(contents);
                read.insert(
                    inc.name.clone(),
                    IncrementPlan {
                        name: inc.name.clone(),
                        entries: contents.entries,
                        entries_by_op: by_op,
                        first: contents.first,
                        last: contents.last,
                    },
                );
            }
            Err(e) if matches!(e.kind(), ErrorKind::Integrity | ErrorKind::Archive) => {
                inc.damage = Some(e.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    let plan = chain::check(&facts).plan(opts)?;
    let increments = plan
        .increments
        .iter()
        .map(|l| read.remove(&l.name).unwrap_or_default())
        .collect();
    Ok(PreparedCycle {
        cycle_dir,
        plan,
        increments,
    })
}

/// The facts the bucket gives: its listing of `<cycle>/` and the cycle's manifest.
async fn bucket_facts(
    storage: &dyn Storage,
    cycle: &str,
) -> Result<(CycleFacts, Option<Manifest>)> {
    let objects = storage.list(&layout::cycle_prefix_of(cycle)).await?;
    if objects.is_empty() {
        return Err(Error::new(
            ErrorKind::StorageNotFound,
            format!("cycle {cycle} not found in {}", storage.describe()),
        ));
    }
    let manifest_key = layout::cycle_manifest_key(cycle);
    let manifest = match objects.iter().any(|o| o.key == manifest_key) {
        true => match storage.read(&manifest_key).await? {
            Some(bytes) => Some(Manifest::parse(&bytes, &manifest_key)?),
            None => None,
        },
        false => None,
    };
    let found: BTreeMap<String, Option<u64>> = objects
        .iter()
        .map(|o| (o.key.clone(), Some(o.size)))
        .collect();
    Ok((
        CycleFacts::gather(cycle, manifest.as_ref(), &found),
        manifest,
    ))
}

/// The facts a cycle already downloaded and extracted gives: its folders, and the manifest the
/// download brought beside them (if any). Sizes of archives are not known there.
fn local_facts(cycle_dir: &Path, cycle: &str) -> Result<CycleFacts> {
    if !cycle_dir.is_dir() {
        return Err(Error::new(
            ErrorKind::Io,
            format!(
                "no cycle at {} (has_download_to_local / --downloaded expects it there)",
                cycle_dir.display()
            ),
        ));
    }
    let manifest = Manifest::read_local(&cycle_dir.join(layout::MANIFEST_FILE))?;
    let mut found: BTreeMap<String, Option<u64>> = BTreeMap::new();
    if layout::full_dir(cycle_dir).is_dir() {
        found.insert(layout::cycle_full_key(cycle, Kind::Gzip), None);
    }
    for name in layout::local_increment_names(cycle_dir) {
        if layout::oplog_file(&layout::increment_dir(cycle_dir, &name)).is_file() {
            found.insert(layout::increment_key(cycle, &name, Kind::Gzip), None);
        }
    }
    Ok(CycleFacts::gather(cycle, manifest.as_ref(), &found))
}

/// Downloads and extracts the dump (unless `--oplog-only`) and the plan's increments, four at a
/// time. A download or archive that does not match its record becomes damage on its fact (the
/// chain then refuses, or stops before it with `--allow-gap`); any other failure stops here.
#[allow(clippy::too_many_arguments)] // each is a different part of the one step
async fn fetch(
    storage: &dyn Storage,
    cycle_dir: &Path,
    manifest: Option<&Manifest>,
    plan: &Plan,
    opts: &PlanOptions,
    identity: Option<Arc<Identity>>,
    facts: &mut CycleFacts,
    progress: &Progress,
) -> Result<()> {
    let cycle = facts.cycle.clone();
    let mut wanted: Vec<(String, PathBuf)> = Vec::new();
    if let (true, Some(key)) = (opts.with_dump, &facts.dump.key) {
        wanted.push((key.clone(), layout::full_dir(cycle_dir)));
    }
    for link in &plan.increments {
        let key = facts
            .increments
            .iter()
            .find(|i| i.name == link.name)
            .and_then(|i| i.key.clone());
        if let Some(key) = key {
            wanted.push((key, layout::increment_dir(cycle_dir, &link.name)));
        }
    }
    let started = Instant::now();
    let recorded = |key: &str| -> Option<&ArchiveEntry> { manifest.and_then(|m| m.entry(key)) };
    let outcomes: Vec<(String, PathBuf, Result<()>)> = futures::stream::iter(wanted)
        .map(|(key, dir)| {
            let identity = identity.clone();
            async move {
                // `<local_temp>/<key>`: beside the folder it extracts to, as the old scripts did.
                let archive = cycle_dir.parent().unwrap_or(cycle_dir).join(&key);
                // What a previous restore left here must not mix with what this one reads.
                let _ = std::fs::remove_dir_all(&dir);
                let outcome =
                    match download(storage, &key, &archive, recorded(&key), progress).await {
                        Ok(()) => extract_beside(archive, identity).await,
                        Err(e) => Err(e),
                    };
                (key, dir, outcome)
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    for (key, dir, outcome) in outcomes {
        let damage = match outcome {
            Ok(()) if dir.is_dir() => None,
            Ok(()) => Some(format!(
                "its archive holds no {} folder",
                dir.file_name().unwrap_or_default().to_string_lossy()
            )),
            Err(e) if matches!(e.kind(), ErrorKind::Integrity | ErrorKind::Archive) => {
                Some(e.to_string())
            }
            Err(e) => return Err(e),
        };
        match Key::parse(&key, "") {
            Key::CycleFull { .. } => facts.dump.damage = damage,
            Key::Increment { name, .. } => {
                if let Some(inc) = facts.increment_mut(name) {
                    inc.damage = damage;
                }
            }
            _ => {}
        }
    }
    log::info!(
        "downloaded and extracted {} of {cycle} in {:.1}s",
        crate::logging::count(
            (plan.increments.len() + usize::from(opts.with_dump)) as u64,
            "archive"
        ),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
