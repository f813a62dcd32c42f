//! restore_full.py, COMPAT §5: download `<name><suffix>` from the bucket root into the local temp
//! directory (unless already there), extract it, and restore `<tmp>/<name>/<db_name>` into
//! `db_name` (or another target). An empty `db_name` restores every database the backup holds.
//! Restores of the whole backup from the bucket skip the local copy: they read the archive as it
//! downloads (`restore_stream`), unless `download_first`.

use std::path::PathBuf;
use std::time::Instant;

use super::selective::{self, NsOptions, SelectivePlan};
use super::{extract_beside, open_source_storage};
use crate::codec::Kind;
use crate::config::Settings;
use crate::error::Result;
use crate::layout;
use crate::manifest::Manifest;
use crate::mongo::connect;
use crate::mongo::restore::{restore_dump_root, restore_selected, DatabaseRestore, RestoreOptions};
use crate::progress::Progress;
use crate::storage::Storage;

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
    /// Only these collections, possibly renamed (`selective`).
    pub ns: NsOptions,
    /// With a selection: say what would be restored; touch no server.
    pub dry_run: bool,
    /// Download and extract into `local_temp` before restoring (kept there: `already_downloaded`
    /// can restore from it again), instead of restoring as the archive downloads.
    pub download_first: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    pub databases: Vec<DatabaseRestore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectivePlan>,
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
    let selection = req.ns.selection()?;
    if req.dry_run && selection.is_everything() {
        return Err(crate::error::Error::config(
            "--dry-run of a full backup lists a selection (--ns-include, --ns-exclude, --ns-from)",
        ));
    }
    let mongo = match req.dry_run {
        true => None,
        false => Some(connect(&settings.restore_mongo).await?),
    };
    let opts = RestoreOptions {
        drop_existing: req.drop_existing,
        progress: progress.clone(),
        ..Default::default()
    };
    if let (Some(mongo), false, false, true) = (
        &mongo,
        req.already_downloaded,
        req.download_first,
        selection.is_everything(),
    ) {
        let databases = restore_streamed(settings, req, mongo, &opts, progress).await?;
        return Ok(RestoreReport {
            databases,
            selection: None,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let manifest = match req.already_downloaded {
        true => None,
        false => download_and_extract(settings, req, progress).await?,
    };
    let backup_dir = req.local_temp.join(&req.name);
    if !selection.is_everything() {
        let plan = selective::plan(
            &req.ns,
            req.target_db.as_deref(),
            &settings.db_name,
            &backup_dir,
            manifest.as_ref(),
            &[],
            None,
        )
        .await?;
        let mut databases = Vec::new();
        if let Some(mongo) = &mongo {
            selective::prepare_targets(mongo, &plan, req.drop_existing).await?;
            let opts = RestoreOptions {
                progress: progress.clone(),
                ..Default::default()
            };
            databases = restore_selected(mongo, &backup_dir, &plan.dump_pairs, &opts).await?;
        }
        return Ok(RestoreReport {
            databases,
            selection: Some(plan),
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let mongo = mongo.expect("connected unless a dry run");
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
        selection: None,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Restores the whole backup straight from the bucket (`restore_stream`): nothing is extracted,
/// and nothing but temporaries is written before the archive is proven.
async fn restore_streamed(
    settings: &Settings,
    req: &RestoreFullRequest,
    mongo: &crate::mongo::Mongo,
    opts: &RestoreOptions,
    progress: &Progress,
) -> Result<Vec<DatabaseRestore>> {
    let storage = open_source_storage(settings, "restoring the backup").await?;
    let (manifest, key) = find_archive(storage.as_ref(), req).await?;
    log::info!(
        "restoring {key} from {} as it downloads",
        storage.describe()
    );
    let dump = super::restore_stream::StreamedDump {
        storage: storage.as_ref(),
        key: &key,
        recorded: manifest.as_ref().and_then(|m| m.entry(&key)),
        top: &req.name,
        db_name: &settings.db_name,
        target_db: req.target_db.as_deref(),
        db_prefix: None,
        missing_is_empty: false,
        identity: settings.identity.clone(),
        spool_dir: super::restore_stream::spool_dir(&req.local_temp),
    };
    super::restore_stream::restore(mongo, dump, opts, progress).await
}

/// The backup's manifest (if it has one) and the key of its archive; an archive the manifest
/// does not record is refused.
async fn find_archive(
    storage: &dyn Storage,
    req: &RestoreFullRequest,
) -> Result<(Option<Manifest>, String)> {
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
        (Some(suffix), m) => {
            let plain = format!("{}{suffix}", req.name);
            let sealed = format!("{plain}{}", crate::crypt::SUFFIX);
            // restore_full.py names the codec only; an encrypted backup adds `.age` to it.
            match m {
                Some(m) if m.entry(&plain).is_none() && m.entry(&sealed).is_some() => sealed,
                _ => plain,
            }
        }
        (None, Some(m)) => m
            .full()
            .map(|f| f.key.clone())
            .unwrap_or_else(|| layout::full_backup_key(&req.name, Kind::Gzip)),
        (None, None) => {
            // Without a manifest: whichever format is there, the old scripts' `.tar.gz` last.
            let mut found = None;
            for format in layout::Format::ALL.into_iter().rev() {
                let key = layout::full_backup_key(&req.name, format);
                if found.is_none() && storage.head(&key).await?.is_some() {
                    found = Some(key);
                }
            }
            found.unwrap_or_else(|| layout::full_backup_key(&req.name, Kind::Gzip))
        }
    };
    if manifest.as_ref().is_some_and(|m| m.entry(&key).is_none()) {
        return Err(crate::error::Error::new(
            crate::error::ErrorKind::Integrity,
            format!(
                "{manifest_key} does not record {key}: refusing an archive it does not vouch for"
            ),
        ));
    }
    Ok((manifest, key))
}

/// Downloads the archive, checked against its manifest when it has one (size and CRC64), and
/// extracts it (read to its end: gzip's own check runs too). Returns the manifest.
async fn download_and_extract(
    settings: &Settings,
    req: &RestoreFullRequest,
    progress: &Progress,
) -> Result<Option<Manifest>> {
    let storage = open_source_storage(settings, "restoring the backup").await?;
    let started = Instant::now();
    let (manifest, key) = find_archive(storage.as_ref(), req).await?;
    let local = req.local_temp.join(&key);
    let recorded = manifest.as_ref().and_then(|m| m.entry(&key));
    // What a previous restore extracted here must not mix with this one.
    let _ = std::fs::remove_dir_all(req.local_temp.join(&req.name));
    super::download(storage.as_ref(), &key, &local, recorded, progress).await?;
    log::info!(
        "downloaded {key} from {} in {:.1}s",
        storage.describe(),
        started.elapsed().as_secs_f64()
    );
    extract_beside(local, settings.identity.clone()).await?;
    Ok(manifest)
}
