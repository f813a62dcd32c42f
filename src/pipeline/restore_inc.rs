//! restore_inc.py, COMPAT §4: download every object of `<cycle>/` (verified, several at once) and
//! extract each archive in place, restore `<cycle>/full_backup/<db_name>`, then replay every
//! `<cycle>/inc_backup/oplog_*` in name order, optionally only up to a point in time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{Document, Timestamp};

use super::{extract_beside, mongo_target, open_source_storage, restore_dump_root};
use crate::config::Settings;
use crate::error::{Error, ErrorKind, Result};
use crate::mongo::connect;
use crate::mongo::replay::engine::{ReplayOptions, ReplaySummary, Replayer};
use crate::mongo::restore::{BsonReader, DatabaseRestore, RestoreOptions};

#[derive(Debug, Clone)]
pub struct RestoreIncRequest {
    pub cycle: String,
    pub local_temp: PathBuf,
    pub already_downloaded: bool,
    pub drop_existing: bool,
    pub target_db: Option<String>,
    pub until: Option<Timestamp>,
    /// List what would be applied; touch no server.
    pub dry_run: bool,
    pub skip_unknown: bool,
    /// Replay the increments over the database as it is, without restoring the full dump first.
    pub oplog_only: bool,
}

/// One increment as read from disk (for `--dry-run`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IncrementPlan {
    pub name: String,
    pub entries_by_op: BTreeMap<String, u64>,
    #[serde(serialize_with = "crate::manifest::serialize_ts")]
    pub first: Option<Timestamp>,
    #[serde(serialize_with = "crate::manifest::serialize_ts")]
    pub last: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreIncReport {
    pub databases: Vec<DatabaseRestore>,
    pub replay: ReplaySummary,
    pub plan: Vec<IncrementPlan>,
    pub seconds: f64,
}

pub async fn run(settings: &Settings, req: &RestoreIncRequest) -> Result<RestoreIncReport> {
    let started = Instant::now();
    if !req.already_downloaded {
        download_cycle(settings, req).await?;
    }
    let cycle_dir = req.local_temp.join(&req.cycle);
    let increments = increment_dirs(&cycle_dir)?;
    let mut report = RestoreIncReport::default();
    if req.dry_run {
        for dir in &increments {
            report.plan.push(plan(dir, req.until)?);
        }
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    let mongo = connect(&mongo_target(settings)).await?;
    if !req.oplog_only {
        let opts = RestoreOptions {
            drop_existing: req.drop_existing,
            ..Default::default()
        };
        report.databases = restore_dump_root(
            &mongo,
            &cycle_dir.join("full_backup"),
            &settings.db_name,
            req.target_db.as_deref(),
            &opts,
            true,
        )
        .await?;
    }
    let mut replayer = Replayer::new(
        &mongo,
        ReplayOptions {
            source_db: settings.db_name.clone(),
            target_db: req.target_db.clone(),
            until: req.until,
            skip_unknown: req.skip_unknown,
        },
    );
    'files: for dir in &increments {
        let path = dir.join("oplog.bson");
        let file = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        let mut reader = BsonReader::new(std::io::BufReader::with_capacity(1 << 20, file), &path);
        let label = format!(
            "replay {}",
            dir.file_name().unwrap_or_default().to_string_lossy()
        );
        let mut task = crate::progress::Task::start(label, crate::progress::Unit::Documents, None);
        while let Some(raw) = reader.next_document()? {
            task.add(1, raw.as_bytes().len() as u64);
            let entry: Document = raw
                .to_document()
                .map_err(|e| Error::new(ErrorKind::Archive, format!("{}: {e}", path.display())))?;
            if !replayer.apply(entry).await? {
                break 'files;
            }
        }
        log::info!("replayed {}", dir.display());
    }
    replayer.finish().await?;
    report.replay = replayer.summary;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn increment_dirs(cycle_dir: &Path) -> Result<Vec<PathBuf>> {
    if !cycle_dir.is_dir() {
        return Err(Error::new(
            ErrorKind::MongoNotFound,
            format!("no cycle at {}", cycle_dir.display()),
        ));
    }
    let inc = cycle_dir.join("inc_backup");
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&inc) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("oplog_"))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    dirs.sort();
    Ok(dirs)
}

fn plan(dir: &Path, until: Option<Timestamp>) -> Result<IncrementPlan> {
    let path = dir.join("oplog.bson");
    let file = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
    let mut reader = BsonReader::new(std::io::BufReader::new(file), &path);
    let mut p = IncrementPlan {
        name: dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        ..Default::default()
    };
    while let Some(raw) = reader.next_document()? {
        let ts = raw.get_timestamp("ts").ok();
        if let (Some(ts), Some(u)) = (ts, until) {
            if ts > u {
                break;
            }
        }
        let op = raw.get_str("op").unwrap_or("?").to_string();
        *p.entries_by_op.entry(op).or_default() += 1;
        p.first = p.first.or(ts);
        p.last = ts.or(p.last);
    }
    Ok(p)
}

async fn download_cycle(settings: &Settings, req: &RestoreIncRequest) -> Result<()> {
    let storage = open_source_storage(settings, "restoring the cycle").await?;
    let objects = storage.list(&format!("{}/", req.cycle)).await?;
    if objects.is_empty() {
        return Err(Error::new(
            ErrorKind::StorageNotFound,
            format!("cycle {} not found in {}", req.cycle, storage.describe()),
        ));
    }
    let started = Instant::now();
    let storage = &storage;
    let paths: Vec<PathBuf> = futures::stream::iter(objects)
        .map(|o| async move {
            let local = req.local_temp.join(&o.key);
            super::download(storage.as_ref(), &o.key, &local, Some(o.size))
                .await
                .map(|_| local)
        })
        .buffer_unordered(4)
        .try_collect()
        .await?;
    log::info!(
        "downloaded {} objects of {} in {:.1}s",
        paths.len(),
        req.cycle,
        started.elapsed().as_secs_f64()
    );
    for path in paths
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
    {
        extract_beside(path).await?;
    }
    Ok(())
}
