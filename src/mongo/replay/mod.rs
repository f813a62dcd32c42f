//! Oplog replay through ordinary commands (never applyOps): `update` turns update entries into
//! whole documents, `engine` applies entries in order, `batch` writes each collection's pending
//! CRUD, and `replay_files` feeds the engine the increments of a restore plan.

mod batch;
pub mod engine;
pub mod update;

use std::path::PathBuf;

use engine::{ReplayOptions, ReplaySummary, Replayer, Scan};

use super::restore::BsonReader;
use super::Mongo;
use crate::error::{Error, ErrorKind, Result};
use crate::position::Position;
use crate::progress::Unit;

/// One oplog.bson to replay, and the position through which its entries were already in the file
/// before it (an old increment's repeats, applied once).
#[derive(Debug, Clone)]
pub struct OplogFile {
    pub path: PathBuf,
    pub label: String,
    pub skip_through: Option<Position>,
}

/// Replays the files in order until `opts.until`, then writes what is still batched.
pub async fn replay_files(
    mongo: &Mongo,
    files: &[OplogFile],
    opts: ReplayOptions,
) -> Result<ReplaySummary> {
    let progress = opts.progress.clone();
    let mut replayer = Replayer::new(Some(mongo), opts);
    feed(&mut replayer, files, &progress).await?;
    Ok(replayer.summary)
}

/// Follows the collections' names through the files without writing anything (`opts.routes`
/// with `scan_only`): the plan of a selective restore.
pub async fn scan_files(files: &[OplogFile], opts: ReplayOptions) -> Result<Scan> {
    let progress = opts.progress.clone();
    let mut replayer = Replayer::new(None, opts);
    feed(&mut replayer, files, &progress).await?;
    Ok(replayer.into_scan())
}

/// Feeds the files' entries to the replayer in order, until it passes `until`, then finishes it.
async fn feed(
    replayer: &mut Replayer<'_>,
    files: &[OplogFile],
    progress: &crate::progress::Progress,
) -> Result<()> {
    'files: for file in files {
        let path = &file.path;
        let handle = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
        let mut reader = BsonReader::new(std::io::BufReader::with_capacity(1 << 20, handle), path);
        let mut task = progress.task(format!("replay {}", file.label), Unit::Documents, None);
        while let Some(raw) = reader.next_document()? {
            task.add(1, raw.as_bytes().len() as u64);
            let repeated = match (file.skip_through, raw.get_timestamp("ts")) {
                (Some(skip), Ok(ts)) => Position::from(ts) <= skip,
                _ => false,
            };
            if repeated {
                replayer.summary.repeated += 1;
                continue;
            }
            let entry = raw
                .to_document()
                .map_err(|e| Error::new(ErrorKind::Archive, format!("{}: {e}", path.display())))?;
            if !replayer.apply(entry).await? {
                break 'files;
            }
        }
        log::info!("replayed {}", file.label);
    }
    replayer.finish().await
}
