//! `verify`: is a backup in the bucket what its manifest says, and does it restore? Every archive
//! the manifest records must be present with the recorded size and CRC64, checked by HEAD without
//! downloading (OSS reports its CRC64; a folder's is computed from the file; S3 reports none, so
//! size only there), and a cycle's increments must chain from its dump's position. `--deep` then
//! proves the restore: it brings the cycle in exactly as a restore does (every check of `chain`),
//! restores the dump into scratch databases on the configured server, compares each collection's
//! document count and content hash with those recorded at dump time, replays every increment into
//! them, and reports how long that took (the drill's recovery time). Old cycles without a manifest
//! are checked by what the bucket holds: archives present and not empty.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::catalog::{self, Catalog};
use super::open_source_storage;
use super::records::{self, LastVerify, LAST_VERIFY};
use super::restore_inc::{self, PreparedCycle};
use super::restore_stream::{self, StreamedDump};
use crate::chain::{self, CycleFacts, PlanOptions};
use crate::config::Settings;
use crate::error::{Error, ErrorKind, Result};
use crate::layout::{self, Key};
use crate::manifest::{ArchiveKind, CollectionDigest, Manifest};
use crate::mongo::replay::engine::{prefixed_name, ReplayOptions, ReplaySummary};
use crate::mongo::replay::replay_files;
use crate::mongo::restore::{DatabaseRestore, RestoreOptions};
use crate::mongo::{connect, inspect, Mongo};
use crate::position::Position;
use crate::progress::Progress;
use crate::storage::Storage;

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub name: String,
    pub has_manifest: bool,
    pub archives: Vec<ArchiveCheck>,
    /// Archives in the bucket the manifest does not name (stored by the old scripts, or by a run
    /// that died before the manifest was rewritten): reported, not an error.
    pub unrecorded: Vec<String>,
    pub deep: Option<DeepCheck>,
    pub ok: bool,
    pub problems: Vec<String>,
    /// Checks that could not be made (no manifest, increments without a recorded range).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArchiveCheck {
    pub key: String,
    pub expected_size: Option<u64>,
    pub expected_crc64: Option<String>,
    pub size: Option<u64>,
    pub crc64: Option<String>,
    pub ok: bool,
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeepCheck {
    pub scratch_database: String,
    pub collections: Vec<CollectionCheck>,
    pub increments: Vec<IncrementCheck>,
    /// What replaying the increments into the scratch databases did.
    pub replay: Option<ReplaySummary>,
    /// The point the scratch copy reached.
    pub reached: Option<Position>,
    /// Download, extraction, restore and replay: how long a real restore of this backup takes
    /// here (the recovery time a drill measures; hashing not included).
    pub restore_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CollectionCheck {
    pub namespace: String,
    pub expected_documents: Option<u64>,
    pub expected_hash: Option<String>,
    pub documents: u64,
    pub hash: String,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct IncrementCheck {
    pub key: String,
    pub expected_entries: Option<u64>,
    pub entries: u64,
    pub ok: bool,
}

pub struct VerifyRequest {
    /// A cycle or full-backup name; `None` = the newest cycle (or full backup when there is none).
    pub name: Option<String>,
    pub deep: bool,
    /// Scratch space for `--deep`: `<local_dir>/.verify-<pid>`, made and removed by the check
    /// [default: `<db_backup_root_path>/verify`].
    pub local_dir: Option<PathBuf>,
}

/// Verifies, then records the outcome for `status` and the metrics file (a verify that could not
/// run counts as failed).
pub async fn run(
    settings: &Settings,
    req: &VerifyRequest,
    progress: &Progress,
) -> Result<VerifyReport> {
    let outcome = check(settings, req, progress).await;
    let record = LastVerify {
        finished_at: crate::hooks::now().timestamp(),
        name: outcome
            .as_ref()
            .ok()
            .map(|r| r.name.clone())
            .or(req.name.clone()),
        deep: req.deep,
        ok: outcome.as_ref().is_ok_and(|r| r.ok),
        problem: match &outcome {
            Ok(r) => r.problems.first().cloned(),
            Err(e) => Some(e.to_string()),
        },
    };
    records::keep(&settings.db_backup_root_path, LAST_VERIFY, &record);
    if let Some(path) = &settings.metrics_file {
        super::status::refresh_metrics(settings, path, true).await;
    }
    outcome
}

async fn check(
    settings: &Settings,
    req: &VerifyRequest,
    progress: &Progress,
) -> Result<VerifyReport> {
    let storage = open_source_storage(settings, "verify").await?;
    let catalog = catalog::read(storage.as_ref(), &settings.cycle_prefix, &|_| false).await?;
    let mut target = pick(&catalog, req.name.as_deref(), &storage.describe())?;
    target.manifest = catalog::read_manifest(storage.as_ref(), &target.manifest_key).await?;
    if let (true, Some(m)) = (req.deep, target.manifest.as_mut()) {
        m.open_sealed(settings.identity())?;
    }
    let mut report = VerifyReport {
        name: target.name.clone(),
        has_manifest: target.manifest.is_some(),
        archives: Vec::new(),
        unrecorded: Vec::new(),
        deep: None,
        ok: true,
        problems: Vec::new(),
        notes: Vec::new(),
    };
    match &target.manifest {
        Some(manifest) => {
            for entry in &manifest.archives {
                report
                    .archives
                    .push(check_archive(storage.as_ref(), entry).await?);
            }
            report.unrecorded = target
                .keys
                .iter()
                .filter(|k| !manifest.archives.iter().any(|a| &a.key == *k))
                .cloned()
                .collect();
        }
        None => {
            for key in &target.keys {
                report
                    .archives
                    .push(check_present(storage.as_ref(), key).await?);
            }
            if target.full_key.is_none() {
                report
                    .problems
                    .push(format!("{} has no full dump archive", target.name));
            }
        }
    }
    for a in report.archives.iter().filter(|a| !a.ok) {
        report.problems.push(format!(
            "{}: {}",
            a.key,
            a.problem.clone().unwrap_or_default()
        ));
    }
    if target.is_cycle {
        // Archives a HEAD found missing or wrong are reported above; the chain adds the breaks
        // between the others (a gap no record explains, an overlap).
        let chain = chain::check(&CycleFacts::gather(
            &target.name,
            target.manifest.as_ref(),
            &target.found,
        ));
        let reported = |name: &str| match target.increment_key(name) {
            Some(key) => report.archives.iter().any(|a| a.key == key && !a.ok),
            None => true,
        };
        let breaks: Vec<String> = chain
            .links
            .iter()
            .filter(|l| !reported(&l.name))
            .filter_map(|l| l.problem.clone())
            .collect();
        report.problems.extend(breaks);
        report.notes = chain.notes;
    }
    if req.deep && report.problems.is_empty() {
        // A folder of its own: `--local-dir` may be a mount point or hold other files.
        let dir = match &req.local_dir {
            Some(d) => d.join(format!(".verify-{}", std::process::id())),
            None => settings.db_backup_root_path.join("verify"),
        };
        let deep = deep_check(settings, storage.as_ref(), &target, &dir, progress).await;
        let _ = std::fs::remove_dir_all(&dir);
        let deep = match deep {
            Ok(d) => d,
            // The restore refused the backup: that is what verify reports.
            Err(e) if e.kind() == ErrorKind::Integrity => {
                report.problems.push(e.to_string());
                report.ok = false;
                return Ok(report);
            }
            Err(e) => return Err(e),
        };
        for c in deep.collections.iter().filter(|c| !c.ok) {
            report.problems.push(format!(
                "{}: restored {} documents (hash {}), the manifest recorded {} (hash {})",
                c.namespace,
                c.documents,
                c.hash,
                c.expected_documents.unwrap_or_default(),
                c.expected_hash.clone().unwrap_or_default()
            ));
        }
        for i in deep.increments.iter().filter(|i| !i.ok) {
            report.problems.push(format!(
                "{}: {} oplog entries, the manifest recorded {}",
                i.key,
                i.entries,
                i.expected_entries.unwrap_or_default()
            ));
        }
        report.deep = Some(deep);
    }
    report.ok = report.problems.is_empty();
    Ok(report)
}

/// The backup chosen for verification, whatever its mode.
struct Target {
    name: String,
    is_cycle: bool,
    manifest_key: String,
    manifest: Option<Manifest>,
    /// Archive keys present in the bucket.
    keys: Vec<String>,
    /// The same with their sizes.
    found: BTreeMap<String, Option<u64>>,
    full_key: Option<String>,
}

impl Target {
    /// The key of increment `name` in the bucket.
    fn increment_key(&self, name: &str) -> Option<String> {
        self.found
            .keys()
            .find(|k| matches!(Key::parse(k, ""), Key::Increment { name: n, .. } if n == name))
            .cloned()
    }
}

fn pick(catalog: &Catalog, name: Option<&str>, bucket: &str) -> Result<Target> {
    let cycle = match name {
        Some(n) => catalog.cycles.iter().find(|c| c.name == n),
        None => catalog.cycles.last(),
    };
    if let Some(c) = cycle {
        let archives: Vec<&catalog::Archive> = c.full.iter().chain(c.increments.iter()).collect();
        return Ok(Target {
            name: c.name.clone(),
            is_cycle: true,
            manifest_key: layout::cycle_manifest_key(&c.name),
            manifest: None,
            keys: archives.iter().map(|a| a.key.clone()).collect(),
            found: archives
                .iter()
                .map(|a| (a.key.clone(), Some(a.size)))
                .collect(),
            full_key: c.full.as_ref().map(|f| f.key.clone()),
        });
    }
    let full = match name {
        Some(n) => catalog.full_backups.iter().find(|f| f.name == n),
        None if catalog.cycles.is_empty() => catalog.full_backups.last(),
        None => None,
    };
    match full {
        Some(f) => Ok(Target {
            name: f.name.clone(),
            is_cycle: false,
            manifest_key: layout::full_manifest_key(&f.name),
            manifest: None,
            keys: vec![f.archive.key.clone()],
            found: BTreeMap::from([(f.archive.key.clone(), Some(f.archive.size))]),
            full_key: Some(f.archive.key.clone()),
        }),
        None => Err(Error::new(
            ErrorKind::StorageNotFound,
            match name {
                Some(n) => format!("no cycle or full backup named {n} in {bucket}"),
                None => format!("no backup in {bucket}"),
            },
        )),
    }
}

async fn check_archive(
    storage: &dyn Storage,
    entry: &crate::manifest::ArchiveEntry,
) -> Result<ArchiveCheck> {
    let found = storage.head(&entry.key).await?;
    let mut check = ArchiveCheck {
        key: entry.key.clone(),
        expected_size: Some(entry.size),
        expected_crc64: Some(entry.crc64.clone()),
        size: found.as_ref().map(|f| f.size),
        crc64: found.as_ref().and_then(|f| f.crc64).map(|c| c.to_string()),
        ok: false,
        problem: None,
    };
    check.problem = match &found {
        None => Some("missing from the bucket".into()),
        Some(f) if f.size != entry.size => Some(format!(
            "size {} in the bucket, {} in the manifest (truncated or replaced)",
            f.size, entry.size
        )),
        Some(f) => match f.crc64 {
            Some(c) if c.to_string() != entry.crc64 => Some(format!(
                "CRC64 {c} in the bucket, {} in the manifest (content replaced)",
                entry.crc64
            )),
            _ => None,
        },
    };
    check.ok = check.problem.is_none();
    Ok(check)
}

async fn check_present(storage: &dyn Storage, key: &str) -> Result<ArchiveCheck> {
    let found = storage.head(key).await?;
    let problem = match &found {
        None => Some("missing from the bucket".to_string()),
        Some(f) if f.size == 0 => Some("empty object".to_string()),
        Some(_) => None,
    };
    Ok(ArchiveCheck {
        key: key.to_string(),
        expected_size: None,
        expected_crc64: None,
        size: found.as_ref().map(|f| f.size),
        crc64: found.as_ref().and_then(|f| f.crc64).map(|c| c.to_string()),
        ok: problem.is_none(),
        problem,
    })
}

/// Restores the backup as a restore from the bucket does (the dump read as it downloads, every
/// check made; the increments downloaded and proven) into scratch databases `verify_<pid>_<db>`,
/// hashes each collection, replays the increments into them, then drops them. Nothing but the
/// increments and the spool of collections restored at the commit touches the local disk.
async fn deep_check(
    settings: &Settings,
    storage: &dyn Storage,
    target: &Target,
    dir: &Path,
    progress: &Progress,
) -> Result<DeepCheck> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io("remove", dir, e))?;
    }
    crate::private::create_dir(dir)?;
    let started = Instant::now();
    let no_dump = || {
        Error::new(
            ErrorKind::StorageNotFound,
            "no full dump archive to restore",
        )
    };
    let (key, recorded, top, prepared) = if target.is_cycle {
        let opts = PlanOptions {
            with_dump: true,
            ..Default::default()
        };
        let listed = restore_inc::list_cycle(Some(storage), &target.name, dir, &opts).await?;
        let (key, recorded) = listed.dump().ok_or_else(no_dump)?;
        let identity = settings.identity.clone();
        let prepared =
            restore_inc::bring_and_prove(Some(storage), listed, &opts, identity, true, progress)
                .await?;
        (key, recorded, layout::FULL_DIR.to_string(), Some(prepared))
    } else {
        let key = target.full_key.clone().ok_or_else(no_dump)?;
        let recorded = target
            .manifest
            .as_ref()
            .and_then(|m| m.entry(&key))
            .cloned();
        (key, recorded, target.name.clone(), None)
    };
    let mongo = connect(&settings.restore_mongo).await?;
    let scratch = format!("verify_{}", std::process::id());
    drop_scratch(&mongo, &scratch).await;
    let dump = StreamedDump {
        storage,
        key: &key,
        recorded: recorded.as_ref(),
        top: &top,
        db_name: &settings.db_name,
        target_db: None,
        db_prefix: Some(&scratch),
        missing_is_empty: target.is_cycle,
        identity: settings.identity.clone(),
        spool_dir: restore_stream::spool_dir(dir),
    };
    let outcome = scratch_restore(
        &mongo,
        settings,
        dump,
        target,
        prepared.as_ref(),
        &scratch,
        progress,
    )
    .await;
    drop_scratch(&mongo, &scratch).await;
    let (collections, replay, hashing) = outcome?;
    let restore_seconds = started.elapsed().saturating_sub(hashing).as_secs_f64();
    let increments = prepared
        .as_ref()
        .map(|p| {
            p.increments
                .iter()
                .map(|i| {
                    let key = target
                        .increment_key(&i.name)
                        .unwrap_or_else(|| i.name.clone());
                    let expected = target
                        .manifest
                        .as_ref()
                        .and_then(|m| m.entry(&key))
                        .and_then(|a| a.entries);
                    IncrementCheck {
                        ok: expected.is_none_or(|e| e == i.entries),
                        expected_entries: expected,
                        entries: i.entries,
                        key,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(DeepCheck {
        scratch_database: scratch,
        collections,
        increments,
        reached: prepared.as_ref().and_then(|p| p.plan.end),
        replay,
        restore_seconds,
    })
}

/// Drops the scratch databases `<scratch>_*`.
async fn drop_scratch(mongo: &Mongo, scratch: &str) {
    let prefix = format!("{scratch}_");
    for db in mongo
        .client
        .list_database_names()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d.starts_with(&prefix))
    {
        let _ = mongo.client.database(&db).drop().await;
    }
}

/// Restores the dump into the scratch databases and compares each collection with the manifest,
/// then replays the increments into them. Returns the checks, the replay, and the time spent
/// hashing (not part of a restore's time).
async fn scratch_restore(
    mongo: &Mongo,
    settings: &Settings,
    dump: StreamedDump<'_>,
    target: &Target,
    prepared: Option<&PreparedCycle>,
    scratch: &str,
    progress: &Progress,
) -> Result<(Vec<CollectionCheck>, Option<ReplaySummary>, Duration)> {
    let opts = RestoreOptions {
        progress: progress.clone(),
        ..Default::default()
    };
    let restored = restore_stream::restore(mongo, dump, &opts, progress).await?;
    let hashing = Instant::now();
    let collections = check_restored(mongo, &restored, scratch, target).await?;
    let hashing = hashing.elapsed();
    let replay = match prepared {
        Some(p) => Some(
            replay_files(
                mongo,
                &p.oplog_files(),
                ReplayOptions {
                    source_db: settings.db_name.clone(),
                    target_db: None,
                    db_prefix: Some(scratch.to_string()),
                    until: None,
                    skip_unknown: false,
                    progress: progress.clone(),
                    routes: None,
                },
            )
            .await?,
        ),
        None => None,
    };
    Ok((collections, replay, hashing))
}

/// Each restored collection's count and hash against the manifest's record of it at dump time,
/// and each recorded collection the restore did not bring back.
async fn check_restored(
    mongo: &Mongo,
    restored: &[DatabaseRestore],
    scratch: &str,
    target: &Target,
) -> Result<Vec<CollectionCheck>> {
    let recorded = target.manifest.as_ref().and_then(|m| {
        m.archives
            .iter()
            .find(|a| a.kind == ArchiveKind::Full)
            .map(|a| a.collections.clone())
    });
    let prefix = format!("{scratch}_");
    let mut checks = Vec::new();
    for db in restored {
        let source = db.database.strip_prefix(&prefix).unwrap_or(&db.database);
        let views = inspect::view_names(mongo, &db.database).await?;
        for c in db
            .collections
            .iter()
            .filter(|c| !views.contains(&c.collection))
        {
            let digest = inspect::hash_collection(mongo, &db.database, &c.collection).await?;
            let namespace = format!("{source}.{}", c.collection);
            let expected = recorded.as_ref().and_then(|r| r.get(&namespace));
            checks.push(CollectionCheck {
                ok: expected
                    .is_none_or(|e| e.documents == digest.documents && e.hash == digest.hex()),
                expected_documents: expected.map(|e| e.documents),
                expected_hash: expected.map(|e| e.hash.clone()),
                documents: digest.documents,
                hash: digest.hex(),
                namespace,
            });
        }
    }
    // A collection recorded at dump time that the restore did not bring back.
    for (ns, summary) in recorded.iter().flatten() {
        let Some((db, coll)) = ns.split_once('.') else {
            continue;
        };
        let scratch_db = prefixed_name(scratch, db);
        let brought = restored.iter().any(|d| {
            d.database == scratch_db && d.collections.iter().any(|c| c.collection == coll)
        });
        if !brought {
            checks.push(CollectionCheck {
                namespace: ns.clone(),
                expected_documents: Some(summary.documents),
                expected_hash: Some(summary.hash.clone()),
                documents: 0,
                hash: CollectionDigest::default().hex(),
                ok: false,
            });
        }
    }
    Ok(checks)
}
