//! One backup run as the config says, whichever the mode: under the run lock beside the config file
//! (where start.py lives), then full or incremental, then the record of its success or failure that
//! `status` reads (`records`), and the metrics file when one is configured.

use std::path::Path;

use chrono::{DateTime, Local};
use serde_json::{json, Value};

use super::backup_full::{self, FullBackupReport};
use super::backup_inc::{self, IncOutcome, IncReport};
use super::records::{self, LastFailure, LastRun, LAST_FAILURE, LAST_RUN};
use crate::config::{Mode, Settings};
use crate::error::{ErrorKind, Result};
use crate::progress::Progress;
use crate::runtime::block_on;
use crate::storage::VerifiedUpload;

/// What one run did.
#[derive(Debug, Clone)]
pub enum BackupOutcome {
    Full(FullBackupReport),
    Incremental(IncReport),
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
    let started = std::time::Instant::now();
    let outcome = match settings.mode {
        Mode::Incremental { period_days } => {
            block_on(backup_inc::run(settings, period_days, now, progress))
                .map(BackupOutcome::Incremental)
        }
        Mode::Full => block_on(backup_full::run(settings, now, progress)).map(BackupOutcome::Full),
    };
    let root = &settings.db_backup_root_path;
    match &outcome {
        // The backup is stored whatever happens to this record; `status` falls back to last.json's time.
        Ok(o) => record_success(root, o, now, started.elapsed().as_secs_f64()),
        // A root that no run made stays unmade.
        Err(e) if root.is_dir() => records::keep(
            root,
            LAST_FAILURE,
            &LastFailure {
                failed_at: crate::hooks::now().timestamp(),
                error: e.to_string(),
            },
        ),
        Err(_) => {}
    }
    if let Some(path) = &settings.metrics_file {
        // After a failure to reach MongoDB, asking it for the oplog window would only wait again.
        let ask_server = !matches!(&outcome, Err(e) if e.kind() == ErrorKind::MongoUnreachable);
        block_on(super::status::refresh_metrics(settings, path, ask_server));
    }
    outcome
}

fn record_success(root: &Path, outcome: &BackupOutcome, now: DateTime<Local>, seconds: f64) {
    let previous: Option<LastRun> = records::read(root, LAST_RUN).unwrap_or(None);
    records::keep(
        root,
        LAST_RUN,
        &LastRun {
            finished_at: now.timestamp(),
            previous_finished_at: previous.map(|p| p.finished_at),
            summary: outcome.summary(),
            seconds: Some(seconds),
            stored_bytes: outcome.stored().map(|u| u.size),
        },
    );
    // A failure before this success is past.
    let _ = std::fs::remove_file(root.join(LAST_FAILURE));
}

impl BackupOutcome {
    /// The archive this run stored in the bucket, if any.
    pub fn stored(&self) -> Option<&VerifiedUpload> {
        match self {
            BackupOutcome::Full(r) => r.upload.as_ref(),
            BackupOutcome::Incremental(r) => r.stored.as_ref(),
        }
    }

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
                    "backup {}: {}, {}, {place} in {:.1}s",
                    r.name,
                    crate::logging::count(r.collections.len() as u64, "collection"),
                    crate::logging::count(docs, "document"),
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
        let mut value = self.outcome_json();
        let stored = self.stored();
        value["key"] = json!(stored.map(|u| u.key.clone()));
        value["size"] = json!(stored.map(|u| u.size));
        value["crc64"] = json!(stored.map(|u| u.crc64.to_string()));
        value["summary"] = json!(self.summary());
        value
    }

    /// The mode's own fields.
    fn outcome_json(&self) -> Value {
        match self {
            BackupOutcome::Full(r) => json!({
                "mode": "full",
                "name": r.name,
                "collections": r.collections.len(),
                "documents": r.collections.iter().map(|c| c.documents).sum::<u64>(),
                "local_dir": r.local_dir.as_ref().map(|p| p.to_string_lossy().into_owned()),
                "seconds": r.seconds,
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
