//! Full mode (`is_inc_backup=0`), COMPAT §3: dump into `<root>/mongodb_backup_titan_<YYYYmmddHHMM>/`
//! (data under `<db_name>/`), archive it to `<root>/<name>.tar.gz` with entries `<name>/...` and
//! upload it to key `<name>.tar.gz` at the bucket root, the three at once (`overlap`); verify, and
//! only then delete the local copies. What an earlier run left unstored is stored first
//! (`full_leftovers`). Without a bucket the dump directory is the backup.
//! A name already taken (a second run in the same minute) gets the seconds appended: a backup is
//! never replaced.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Local};

use super::open_storage;
use super::overlap;
use crate::archive::ArchiveStats;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::layout;
use crate::manifest::{self, ArchiveKind};
use crate::mongo::dump::CollectionDump;
use crate::mongo::{connect, Mongo};
use crate::progress::Progress;
use crate::storage::{Storage, VerifiedUpload};

/// What a full backup produced.
#[derive(Debug, Clone)]
pub struct FullBackupReport {
    /// `mongodb_backup_titan_<YYYYmmddHHMM>`
    pub name: String,
    pub collections: Vec<CollectionDump>,
    /// The verified object, when uploading.
    pub upload: Option<VerifiedUpload>,
    /// Where the backup stays when it is not uploaded.
    pub local_dir: Option<PathBuf>,
    pub seconds: f64,
}

pub async fn run(
    settings: &Settings,
    now: DateTime<Local>,
    progress: &Progress,
) -> Result<FullBackupReport> {
    let started = Instant::now();
    // Both checks come first: a wrong password or bucket must not cost a whole dump.
    let storage = match &settings.storage {
        Some(target) => Some(open_storage(target, settings).await?),
        None => None,
    };
    let mongo = connect(&settings.mongo).await?;
    crate::state::check_root(&settings.db_backup_root_path)?;
    if let Some(storage) = &storage {
        super::full_leftovers::take_care(storage.as_ref(), settings, progress).await;
    }
    let name = free_name(settings, storage.as_deref(), now).await?;
    let dir = settings.db_backup_root_path.join(&name);
    crate::private::create_dir(&dir)?;
    log::info!(
        "full backup {name}: dumping {} into {}",
        describe_db(&settings.db_name),
        dir.display()
    );
    let (collections, upload, local_dir) = match storage {
        Some(storage) => {
            let (collections, done) =
                dump_and_store(&mongo, settings, storage.as_ref(), &dir, &name, progress).await?;
            (collections, Some(done), None)
        }
        None => {
            let job = overlap::DumpJob {
                mongo: &mongo,
                settings,
                dir: &dir,
                // Named for the job; only a bucket gets an archive.
                archive_path: &layout::archive_path_for(&dir, settings.archive_format()),
                allow_empty: false,
                progress,
            };
            (overlap::dump_only(&job).await?, None, Some(dir))
        }
    };
    let report = FullBackupReport {
        name,
        collections,
        upload,
        local_dir,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok(report)
}

/// Full mode: dumps into `dir` while archiving it to `<dir>.tar.gz` and uploading that as
/// `<name>.tar.gz` (`overlap`), verifies it, records it in `<name>.manifest.json`, and only then
/// deletes the directory and the archive. A failed dump leaves neither; a failed upload both, with
/// the archive's entry beside it, and the next run stores them.
async fn dump_and_store(
    mongo: &Mongo,
    settings: &Settings,
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    progress: &Progress,
) -> Result<(Vec<CollectionDump>, VerifiedUpload)> {
    let started = Instant::now();
    let format = settings.archive_format();
    let archive_path = layout::archive_path_for(dir, format);
    let key = layout::full_backup_key(name, format);
    let job = overlap::DumpJob {
        mongo,
        settings,
        dir,
        archive_path: &archive_path,
        allow_empty: false,
        progress,
    };
    // The entry goes beside the archive before its upload may complete (`full_leftovers`).
    let sidecar = super::full_leftovers::sidecar_of(&archive_path);
    let sidecar_ref = &sidecar;
    let seal = |collections: Vec<CollectionDump>, stats: ArchiveStats, crc64: Option<u64>| async move {
        let mut entry = super::manifest_entry(ArchiveKind::Full, &collections, settings)?;
        entry.codec = Some(settings.codec.kind);
        if let Some(crc64) = crc64 {
            // No local copy: what the next run compares the stored object with.
            entry.size = stats.archive_bytes;
            entry.crc64 = crc64.to_string();
        }
        crate::state::write(sidecar_ref, &entry)?;
        Ok((collections, entry))
    };
    let dumped = match overlap::dump_and_archive(&job, Some((storage, &key)), seal).await {
        Ok(dumped) => dumped,
        Err(e) => {
            // The archive went with the failure; without a local copy the stream may still have
            // completed (a lost response), which the sidecar lets the next run find out.
            if settings.local_copy {
                let _ = std::fs::remove_file(&sidecar);
            }
            return Err(e);
        }
    };
    super::log_archived(dir, &dumped.stats, started);
    let done =
        super::upload_unless_streamed(storage, &archive_path, &key, dumped.streamed, progress)
            .await?;
    crate::hooks::crash_point("after_upload");
    let place =
        manifest::Place::of_full_backup(&settings.db_backup_root_path, name, &settings.db_name);
    manifest::record_stored(storage, &place, dumped.sealed, &done).await?;
    crate::hooks::crash_point("after_manifest");
    std::fs::remove_dir_all(dir).map_err(|e| Error::io("remove", dir, e))?;
    if settings.local_copy {
        std::fs::remove_file(&archive_path).map_err(|e| Error::io("remove", &archive_path, e))?;
    }
    // The sidecar last: one left alone after a crash here names a recorded backup.
    std::fs::remove_file(&sidecar).map_err(|e| Error::io("remove", &sidecar, e))?;
    let _ = std::fs::remove_file(&place.local);
    Ok((dumped.collections, done))
}

/// `mongodb_backup_titan_<YYYYmmddHHMM>`, or `…<YYYYmmddHHMMSS>` when a backup of that minute is
/// in the bucket or in the local root already (a run a minute ago, or one that failed and left its
/// files): a name is never reused. Two runs in the same second wait for the next one.
async fn free_name(
    settings: &Settings,
    storage: Option<&dyn Storage>,
    now: DateTime<Local>,
) -> Result<String> {
    let mut at = now;
    loop {
        let minute = layout::full_backup_name(at, false);
        if !taken(settings, storage, &minute).await? {
            return Ok(minute);
        }
        let second = layout::full_backup_name(at, true);
        if !taken(settings, storage, &second).await? {
            log::info!("{minute} exists already: this backup is named {second}");
            return Ok(second);
        }
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        at = Local::now();
    }
}

async fn taken(settings: &Settings, storage: Option<&dyn Storage>, name: &str) -> Result<bool> {
    let dir = settings.db_backup_root_path.join(name);
    if dir.exists() || !layout::existing_archives_of(&dir).is_empty() {
        return Ok(true);
    }
    if let Some(s) = storage {
        for format in layout::Format::ALL {
            if s.head(&layout::full_backup_key(name, format))
                .await?
                .is_some()
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn describe_db(db: &str) -> String {
    if db.is_empty() {
        "every database".into()
    } else {
        format!("database {db}")
    }
}
