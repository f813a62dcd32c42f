//! Full mode (`is_inc_backup=0`), COMPAT §3: dump into `<root>/mongodb_backup_titan_<YYYYmmddHHMM>/`
//! (data under `<db_name>/`), archive it to `<root>/<name>.tar.gz` with entries `<name>/...`, upload
//! it to key `<name>.tar.gz` at the bucket root, verify, and only then delete the local copies.
//! A name already taken (a second run in the same minute) gets the seconds appended: a backup is
//! never replaced.

use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Local};

use super::{dump_and_store, open_storage};
use crate::config::Settings;
use crate::error::Result;
use crate::layout;
use crate::mongo::connect;
use crate::mongo::dump::{self, CollectionDump, DumpOptions};
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
            let opts = DumpOptions {
                progress: progress.clone(),
                ..Default::default()
            };
            match dump::dump(&mongo, &settings.db_name, &dir, &opts).await {
                Ok(collections) => (collections, None, Some(dir)),
                Err(e) => {
                    // A partial dump is no backup: leave nothing behind that looks like one.
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(e);
                }
            }
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
