//! What the runs leave in the local root for `status` and the metrics file: the last successful
//! backup (`mongo_oss_backup_last_run.json`), the last failed one, and the last verify. Each is a
//! small JSON file written atomically; a failure to write one only warns (the backup is stored
//! whatever happens to its record).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::state;

pub const LAST_RUN: &str = "mongo_oss_backup_last_run.json";
pub const LAST_FAILURE: &str = "mongo_oss_backup_last_failure.json";
pub const LAST_VERIFY: &str = "mongo_oss_backup_last_verify.json";

/// The last successful run (and the one before it, which gives the interval between runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    pub finished_at: i64,
    #[serde(default)]
    pub previous_finished_at: Option<i64>,
    pub summary: String,
    /// How long the run took (records of earlier versions lack it).
    #[serde(default)]
    pub seconds: Option<f64>,
    /// Bytes the run stored in the bucket (archives and manifests aside: the archives only).
    #[serde(default)]
    pub stored_bytes: Option<u64>,
}

/// The last run that failed; a success removes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastFailure {
    pub failed_at: i64,
    pub error: String,
}

/// The last `verify`, whatever it found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastVerify {
    pub finished_at: i64,
    pub name: Option<String>,
    pub deep: bool,
    pub ok: bool,
    /// The first problem found, or the error that stopped the verify.
    pub problem: Option<String>,
}

pub fn read<T: for<'de> Deserialize<'de>>(root: &Path, name: &str) -> Result<Option<T>> {
    state::read(&root.join(name))
}

/// Writes a record into `root` (created private when missing), warning instead of failing. A root
/// writable by others is never written to (the run itself refuses it).
pub fn keep<T: Serialize>(root: &Path, name: &str, record: &T) {
    let written = state::check_root(root)
        .and_then(|_| crate::private::create_dir(root))
        .and_then(|_| state::write(&root.join(name), record));
    if let Err(e) = written {
        log::warn!(
            "could not record this run for `status` in {}: {e}",
            root.display()
        );
    }
}
