//! restore_full.py, COMPAT §5: download `<name><suffix>` from the bucket root into the local temp
//! directory (unless already there), extract it, and restore `<tmp>/<name>/<db_name>` into
//! `db_name` (or another target). An empty `db_name` restores every database the backup holds.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{mongo_target, open_storage};
use crate::archive;
use crate::config::Settings;
use crate::error::{Error, ErrorKind, Result};
use crate::mongo::connect;
use crate::mongo::restore::{restore_database, DatabaseRestore, RestoreOptions};

#[derive(Debug, Clone)]
pub struct RestoreFullRequest {
    /// The backup's name, e.g. `mongodb_backup_titan_201512221438`.
    pub name: String,
    /// Archive suffix, `.tar.gz`.
    pub suffix: String,
    /// Where the archive is downloaded and extracted.
    pub local_temp: PathBuf,
    /// The archive is already extracted there: do not download.
    pub already_downloaded: bool,
    pub drop_existing: bool,
    /// Restore into this database instead of `db_name`.
    pub target_db: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub databases: Vec<DatabaseRestore>,
    pub seconds: f64,
}

impl RestoreReport {
    pub fn failed(&self) -> bool {
        self.databases
            .iter()
            .any(|d| d.failed_documents() > 0 || d.failed_indexes() > 0)
    }
}

pub async fn run(settings: &Settings, req: &RestoreFullRequest) -> Result<RestoreReport> {
    let started = Instant::now();
    let mongo = connect(&mongo_target(settings)).await?;
    if !req.already_downloaded {
        download_and_extract(settings, req).await?;
    }
    let backup_dir = req.local_temp.join(&req.name);
    let mut jobs: Vec<(PathBuf, String)> = Vec::new();
    if settings.db_name.is_empty() {
        for db in database_dirs(&backup_dir)? {
            jobs.push((backup_dir.join(&db), db));
        }
        if req.target_db.is_some() && jobs.len() > 1 {
            return Err(Error::config(
                "--target-db needs db_name: the backup holds several databases",
            ));
        }
    } else {
        jobs.push((backup_dir.join(&settings.db_name), settings.db_name.clone()));
    }
    let opts = RestoreOptions {
        drop_existing: req.drop_existing,
        ..Default::default()
    };
    let mut databases = Vec::new();
    for (dir, db) in jobs {
        let target = req.target_db.clone().unwrap_or(db);
        log::info!("restoring {} into database {target}", dir.display());
        databases.push(restore_database(&mongo, &dir, &target, &opts).await?);
    }
    Ok(RestoreReport {
        databases,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn download_and_extract(settings: &Settings, req: &RestoreFullRequest) -> Result<()> {
    let target = settings.storage.as_ref().ok_or_else(|| {
        Error::config(
            "no bucket configured to download the backup from (set endpoint/bucket or storage_url)",
        )
    })?;
    let storage = open_storage(target, settings).await?;
    let key = format!("{}{}", req.name, req.suffix);
    let local = req.local_temp.join(&key);
    let started = Instant::now();
    storage.get_file(&key, &local, &|_| {}).await?;
    log::info!(
        "downloaded {key} from {} in {:.1}s",
        storage.describe(),
        started.elapsed().as_secs_f64()
    );
    let (archive_path, dest) = (local.clone(), req.local_temp.clone());
    tokio::task::spawn_blocking(move || archive::extract(&archive_path, &dest))
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, format!("extract task failed: {e}")))??;
    Ok(())
}

fn database_dirs(backup_dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(backup_dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::new(
                ErrorKind::MongoNotFound,
                format!("no backup at {}", backup_dir.display()),
            )
        } else {
            Error::io("read directory", backup_dir, e)
        }
    })?;
    let mut dbs: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dbs.sort();
    Ok(dbs)
}
