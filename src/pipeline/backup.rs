//! One backup run as the config says, whichever the mode: under the run lock beside the config file
//! (where start.py lives), then full or incremental, then the record of its success that `status`
//! reads (`<db_backup_root_path>/mongo_oss_backup_last_run.json`).

use std::path::Path;

use chrono::{DateTime, Local};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::backup_full::{self, FullBackupReport};
use super::backup_inc::{self, IncOutcome, IncReport};
use crate::config::{Mode, Settings};
use crate::error::Result;
use crate::progress::Progress;
use crate::runtime::block_on;
use crate::storage::VerifiedUpload;

pub const LAST_RUN: &str = "mongo_oss_backup_last_run.json";

/// What one run did.
#[derive(Debug, Clone)]
pub enum BackupOutcome {
    Full(FullBackupReport),
    Incremental(IncReport),
}

/// The last successful run (and the one before it, which gives the interval between runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    pub finished_at: i64,
    #[serde(default)]
    pub previous_finished_at: Option<i64>,
    pub summary: String,
}

/// Runs one backup under the lock. `Err(Busy)` when another run holds it.
pub fn run(settings: &Settings, progress: &Progress) -> Result<BackupOutcome> {
    let lock_dir = settings
        .source
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let _lock = crate::lock::acquire(lock_dir)?;
    let now = crate::hooks::now();
    let outcome = match settings.mode {
        Mode::Incremental { period_days } => BackupOutcome::Incremental(block_on(
            backup_inc::run(settings, period_days, now, progress),
        )?),
        Mode::Full => BackupOutcome::Full(block_on(backup_full::run(settings, now, progress))?),
    };
    // The backup is stored whatever happens to this record; `status` falls back to last.json's time.
    if let Err(e) = record_success(&settings.db_backup_root_path, &outcome.summary(), now) {
        log::warn!("the backup is stored, but recording its time for `status` failed: {e}");
    }
    Ok(outcome)
}

fn record_success(root: &Path, summary: &str, now: DateTime<Local>) -> Result<()> {
    let path = root.join(LAST_RUN);
    let previous: Option<LastRun> = crate::state::read(&path).unwrap_or(None);
    crate::private::create_dir(root)?;
    crate::state::write(
        &path,
        &LastRun {
            finished_at: now.timestamp(),
            previous_finished_at: previous.map(|p| p.finished_at),
            summary: summary.to_string(),
        },
    )
}

impl BackupOutcome {
    /// The one summary line a cron log gets.
    pub fn summary(&self) -> String {
        match self {
            BackupOutcome::Full(r) => {
                let docs: u64 = r.collections.iter().map(|c| c.documents).sum();
                let place = match (&r.upload, &r.local_dir) {
                    (Some(up), _) => stored_as(up),
                    (None, Some(dir)) => format!("kept in {}", dir.display()),
                    (None, None) => String::new(),
                };
                format!(
                    "backup {}: {} collections, {docs} documents, {place} in {:.1}s",
                    r.name,
                    r.collections.len(),
                    r.seconds
                )
            }
            BackupOutcome::Incremental(r) => {
                let what = match &r.outcome {
                    IncOutcome::FullDump { documents } => {
                        format!("full dump of {documents} documents")
                    }
                    IncOutcome::Increment { name, entries } => {
                        format!("increment {name} with {entries} oplog entries")
                    }
                    IncOutcome::NothingNew => "nothing new".to_string(),
                };
                let place = match &r.stored {
                    Some(up) => format!(", {}", stored_as(up)),
                    None => String::new(),
                };
                format!(
                    "cycle {}: {what}{place}; covered up to {}",
                    r.cycle, r.position
                )
            }
        }
    }

    /// The machine-readable form (`--json`, the Python API).
    pub fn to_json(&self) -> Value {
        match self {
            BackupOutcome::Full(r) => json!({
                "mode": "full",
                "name": r.name,
                "collections": r.collections.len(),
                "documents": r.collections.iter().map(|c| c.documents).sum::<u64>(),
                "key": r.upload.as_ref().map(|u| u.key.clone()),
                "size": r.upload.as_ref().map(|u| u.size),
                "crc64": r.upload.as_ref().map(|u| u.crc64.to_string()),
                "local_dir": r.local_dir.as_ref().map(|p| p.to_string_lossy().into_owned()),
                "seconds": r.seconds,
                "summary": self.summary(),
            }),
            BackupOutcome::Incremental(r) => {
                let (outcome, name, entries, documents) = match &r.outcome {
                    IncOutcome::FullDump { documents } => {
                        ("full_dump", None, None, Some(*documents))
                    }
                    IncOutcome::Increment { name, entries } => {
                        ("increment", Some(name.clone()), Some(*entries), None)
                    }
                    IncOutcome::NothingNew => ("nothing_new", None, None, None),
                };
                json!({
                    "mode": "incremental",
                    "cycle": r.cycle,
                    "outcome": outcome,
                    "name": name,
                    "entries": entries,
                    "documents": documents,
                    "position": r.position,
                    "flushed": r.flushed,
                    "key": r.stored.as_ref().map(|u| u.key.clone()),
                    "size": r.stored.as_ref().map(|u| u.size),
                    "crc64": r.stored.as_ref().map(|u| u.crc64.to_string()),
                    "summary": self.summary(),
                })
            }
        }
    }
}

fn stored_as(up: &VerifiedUpload) -> String {
    format!(
        "stored as {} ({}, CRC64 {})",
        up.key,
        crate::logging::size(up.size),
        up.crc64
    )
}
