//! restore_full.py, COMPAT §5: download `<name><suffix>` from the bucket root into the local temp
//! directory (unless already there), extract it, and restore `<tmp>/<name>/<db_name>` into
//! `db_name` (or another target). An empty `db_name` restores every database the backup holds.

use std::path::PathBuf;
use std::time::Instant;

use super::{extract_beside, open_source_storage};
use crate::codec::Kind;
use crate::config::Settings;
use crate::error::Result;
use crate::layout;
use crate::manifest::Manifest;
use crate::mongo::connect;
use crate::mongo::restore::{restore_dump_root, DatabaseRestore, RestoreOptions};
use crate::progress::Progress;

#[derive(Debug, Clone)]
pub struct RestoreFullRequest {
    /// The backup's name, e.g. `mongodb_backup_titan_201512221438`.
    pub name: String,
    /// Archive suffix (`.tar.gz`, `.tar.zst`); `None`: the one the manifest records, else the one
    /// the bucket holds.
    pub suffix: Option<String>,
    /// Where the archive is downloaded and extracted.
    pub local_temp: PathBuf,
    /// The archive is already extracted there: do not download.
    pub already_downloaded: bool,
    pub drop_existing: bool,
    /// Restore into this database instead of `db_name`.
    pub target_db: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    pub databases: Vec<DatabaseRestore>,
    pub seconds: f64,
}

impl RestoreReport {
    pub fn failed(&self) -> bool {
        crate::mongo::restore::any_failed(&self.databases)
    }
}

pub async fn run(
    settings: &Settings,
    req: &RestoreFullRequest,
    progress: &Progress,
) -> Result<RestoreReport> {
    let started = Instant::now();
    let mongo = connect(&settings.restore_mongo).await?;
    if !req.already_downloaded {
        download_and_extract(settings, req, progress).await?;
    }
    let opts = RestoreOptions {
        drop_existing: req.drop_existing,
        progress: progress.clone(),
        ..Default::default()
    };
    let backup_dir = req.local_temp.join(&req.name);
    let databases = restore_dump_root(
        &mongo,
        &backup_dir,
        &settings.db_name,
        req.target_db.as_deref(),
        &opts,
        false,
    )
    .await?;
    Ok(RestoreReport {
        databases,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Downloads the archive, checked against its manifest when it has one (size and CRC64), and
/// extracts it (read to its end: gzip's own check runs too).
async fn download_and_extract(
    settings: &Settings,
    req: &RestoreFullRequest,
    progress: &Progress,
) -> Result<()> {
    let storage = open_source_storage(settings, "restoring the backup").await?;
    let started = Instant::now();
    let manifest_key = layout::full_manifest_key(&req.name);
    let manifest = match storage.read(&manifest_key).await? {
        Some(bytes) => Some(Manifest::parse(&bytes, &manifest_key)?),
        None => {
            log::warn!(
                "{} has no manifest (stored before manifests): its CRC64 is not checked",
                req.name
            );
            None
        }
    };
    let key = match (&req.suffix, &manifest) {
        (Some(suffix), _) => format!("{}{suffix}", req.name),
        (None, Some(m)) => m
            .full()
            .map(|f| f.key.clone())
            .unwrap_or_else(|| layout::full_backup_key(&req.name, Kind::Gzip)),
        (None, None) => {
            let zstd = layout::full_backup_key(&req.name, Kind::Zstd);
            match storage.head(&zstd).await? {
                Some(_) => zstd,
                None => layout::full_backup_key(&req.name, Kind::Gzip),
            }
        }
    };
    let local = req.local_temp.join(&key);
    let recorded = manifest.as_ref().and_then(|m| m.entry(&key));
    if manifest.is_some() && recorded.is_none() {
        return Err(crate::error::Error::new(
            crate::error::ErrorKind::Integrity,
            format!(
                "{manifest_key} does not record {key}: refusing an archive it does not vouch for"
            ),
        ));
    }
    // What a previous restore extracted here must not mix with this one.
    let _ = std::fs::remove_dir_all(req.local_temp.join(&req.name));
    super::download(storage.as_ref(), &key, &local, recorded, progress).await?;
    log::info!(
        "downloaded {key} from {} in {:.1}s",
        storage.describe(),
        started.elapsed().as_secs_f64()
    );
    extract_beside(local).await
}
