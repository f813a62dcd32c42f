//! Restoring a dump straight from the bucket, with nothing extracted to disk: the object's bytes
//! go from the download through a CRC64 tally, age, the codec and the tar reader into a staged
//! restore (`mongo::staged`), collection by collection, while the download goes on. What the
//! target holds is touched only after the last byte: the size and CRC64 against the manifest and
//! the bucket, and the codec's own checks, decide between putting the staged collections in place
//! and dropping them. A refused restore leaves the target as it was.
//!
//! Archives list each collection's metadata before its `.bson` since the overlapped dumps; in
//! older ones (and the old scripts') the `.bson` comes first and waits in a local spool file until
//! its metadata follows (one collection at a time: they are next to each other).

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::crypt::Identity;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::ArchiveEntry;
use crate::mongo::dump_dir::{collection_name, DumpedCollection};
use crate::mongo::metadata::Metadata;
use crate::mongo::restore::{BsonReader, DatabaseRestore, Documents, RestoreOptions};
use crate::mongo::staged::{restored_at_commit, Incoming, Staging};
use crate::mongo::Mongo;
use crate::progress::Progress;
use crate::storage::{Crc64, Storage};

/// A dump archive in the bucket and what to restore from it.
pub struct StreamedDump<'a> {
    pub storage: &'a dyn Storage,
    pub key: &'a str,
    /// Its manifest entry: the size and CRC64 the backup stored.
    pub recorded: Option<&'a ArchiveEntry>,
    /// The archive's top folder: the backup's name (full mode) or `full_backup` (a cycle).
    pub top: &'a str,
    /// The database to restore; empty: every one the dump holds.
    pub db_name: &'a str,
    pub target_db: Option<&'a str>,
    /// Every database restores into `<prefix>_<db>` instead (`verify --deep`'s scratch copies).
    pub db_prefix: Option<&'a str>,
    /// A missing `db_name` folder is an empty database (a cycle begun on one), not an error.
    pub missing_is_empty: bool,
    pub identity: Option<Arc<Identity>>,
    /// Where a `.bson` that comes before its metadata waits (removed afterwards).
    pub spool_dir: PathBuf,
}

/// The spool folder of this process's streamed restore, inside the restore's local folder.
pub fn spool_dir(local_temp: &Path) -> PathBuf {
    local_temp.join(format!(".spool-{}", std::process::id()))
}

/// Restores `dump` through a staged restore; see the module's documentation.
pub async fn restore(
    mongo: &Mongo,
    dump: StreamedDump<'_>,
    opts: &RestoreOptions,
    progress: &Progress,
) -> Result<Vec<DatabaseRestore>> {
    let mut staging = Staging::default();
    let spool_dir = dump.spool_dir.clone();
    let outcome = match stage(mongo, dump, opts, progress, &mut staging).await {
        Ok(staged) => staged.commit(mongo, &mut staging, opts).await,
        Err(e) => Err(e),
    };
    finish(mongo, staging, &spool_dir).await;
    outcome
}

/// After a staged restore, committed or not: drops what was written and not put in place, and
/// the spool folder.
pub async fn finish(mongo: &Mongo, staging: Staging, spool_dir: &Path) {
    staging.discard(mongo).await;
    let _ = std::fs::remove_dir_all(spool_dir);
}

/// A dump read through and checked, its collections staged: nothing the target held has been
/// touched yet. `commit` puts them in place.
pub struct Staged {
    key: String,
    walked: Walked,
}

impl Staged {
    pub async fn commit(
        self,
        mongo: &Mongo,
        staging: &mut Staging,
        opts: &RestoreOptions,
    ) -> Result<Vec<DatabaseRestore>> {
        let Staged { key, walked } = self;
        log::info!("{key} read through and checked: putting the restored collections in place");
        let mut databases = staging
            .commit(mongo, &walked.databases, &walked.at_commit, opts)
            .await?;
        if !walked.ignored.is_empty() {
            log::warn!(
                "{key}: ignored {} that a dump does not hold: {}",
                crate::logging::count(walked.ignored.len() as u64, "file"),
                walked.ignored.join(", ")
            );
            if let Some(first) = databases.first_mut() {
                first.ignored_files = walked.ignored;
            }
        }
        Ok(databases)
    }
}

/// Reads `dump` through into `staging`, every check made. Whatever the outcome (or if this is
/// dropped half-way), what was written is in `staging` for `finish`.
pub async fn stage(
    mongo: &Mongo,
    dump: StreamedDump<'_>,
    opts: &RestoreOptions,
    progress: &Progress,
    staging: &mut Staging,
) -> Result<Staged> {
    let key = dump.key.to_string();
    let (info, mut stream) = dump.storage.read_stream(&key).await?;
    if let Some(recorded) = dump.recorded {
        // The bucket's own figures, before a byte is read.
        let crc_differs =
            matches!((recorded.crc64_value(), info.crc64), (Some(a), Some(b)) if a != b);
        if info.size != recorded.size || crc_differs {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!(
                    "{key}: the bucket holds {} bytes (CRC64 {}), the manifest recorded {} (CRC64 {}): nothing was restored",
                    info.size,
                    info.crc64.map_or("unknown".into(), |c| c.to_string()),
                    recorded.size,
                    recorded.crc64
                ),
            ));
        }
    }
    crate::private::create_dir(&dump.spool_dir)?;
    let (chunks_tx, chunks_rx) = mpsc::channel::<Result<Bytes>>(16);
    let transfer = progress.transfer(format!("download {key}"), Some(info.size));
    // The download, tallied as it passes.
    let pump = async move {
        let (mut tally, mut bytes) = (Crc64::default(), 0u64);
        while let Some(chunk) = stream.next().await {
            let failed = chunk.is_err();
            if let Ok(c) = &chunk {
                tally.update(c);
                bytes += c.len() as u64;
                transfer.report(bytes);
            }
            if chunks_tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
        (bytes, tally.value())
    };
    let (incoming_tx, incoming_rx) = mpsc::channel::<Incoming>(1);
    let walk = Walk {
        key: key.clone(),
        top: dump.top.to_string(),
        db_name: dump.db_name.to_string(),
        target_db: dump.target_db.map(str::to_string),
        db_prefix: dump.db_prefix.map(str::to_string),
        spool_dir: dump.spool_dir.clone(),
        batch_bytes: opts.batch_bytes,
        missing_is_empty: dump.missing_is_empty,
    };
    let identity = dump.identity.clone();
    let walker = tokio::task::spawn_blocking(move || {
        let input = Download {
            chunks: chunks_rx,
            current: Bytes::new(),
        };
        walk.run(input, identity.as_deref(), incoming_tx)
    });
    let receive = staging.receive(mongo, incoming_rx, opts);
    let ((bytes, crc), received, walked) = tokio::join!(pump, receive, walker);
    let walked = walked
        .map_err(|e| Error::new(ErrorKind::Internal, format!("archive reader failed: {e}")))?;
    let outcome = match (received, walked) {
        // A damaged archive first (the writer then only got a copy of that error), then the
        // writer's failure (the reader's is then only that no one was listening).
        (_, Err(e)) if matches!(e.kind(), ErrorKind::Archive | ErrorKind::Integrity) => {
            Err(Error::new(e.kind(), format!("{e}; nothing was restored")))
        }
        (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(walked)) => {
            check_download(&key, bytes, crc, info.size, info.crc64, dump.recorded).map(|()| walked)
        }
    };
    outcome.map(|walked| Staged { key, walked })
}

/// The download's size and CRC64 against the bucket's and the manifest's.
fn check_download(
    key: &str,
    bytes: u64,
    crc: u64,
    stored_size: u64,
    stored_crc: Option<u64>,
    recorded: Option<&ArchiveEntry>,
) -> Result<()> {
    let why = if bytes != stored_size {
        Some(format!("{bytes} bytes downloaded, {stored_size} stored"))
    } else if let Some(expected) = stored_crc.filter(|c| *c != crc) {
        Some(format!("CRC64 {crc} downloaded, {expected} stored"))
    } else {
        recorded.and_then(|r| super::differs_from_record(bytes, crc, r))
    };
    match why {
        None => Ok(()),
        Some(why) => Err(Error::new(
            ErrorKind::Integrity,
            format!("{key}: {why}; nothing was restored"),
        )),
    }
}

/// The downloaded chunks as a `Read` for the blocking archive reader.
struct Download {
    chunks: mpsc::Receiver<Result<Bytes>>,
    current: Bytes,
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(std::io::Error::other(e.to_string())),
                Some(Ok(chunk)) => self.current = chunk,
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// What the archive reader needs to know.
struct Walk {
    key: String,
    top: String,
    db_name: String,
    target_db: Option<String>,
    db_prefix: Option<String>,
    spool_dir: PathBuf,
    batch_bytes: usize,
    missing_is_empty: bool,
}

/// What the archive held besides the staged collections.
struct Walked {
    /// Target databases the dump holds (with or without collections).
    databases: Vec<String>,
    /// Collections restored directly at the commit, from spooled files.
    at_commit: Vec<(String, DumpedCollection)>,
    /// Files of the dump folders that are not part of a dump.
    ignored: Vec<String>,
}

/// A collection seen in part: its metadata, or its `.bson` spooled.
#[derive(Default)]
struct Pending {
    metadata: Option<Metadata>,
    spool: Option<PathBuf>,
}

/// Metadata files are small; a bigger one is not ours.
const MAX_METADATA: u64 = 64 << 20;

impl Walk {
    fn run(
        &self,
        input: impl Read + Send + 'static,
        identity: Option<&Identity>,
        incoming: mpsc::Sender<Incoming>,
    ) -> Result<Walked> {
        let plain = crate::crypt::reader(input, identity, &self.key)?;
        let (_, decoder) =
            crate::codec::decoder(plain).map_err(|e| crate::archive::unreadable(&self.key, e))?;
        let mut tar = tar::Archive::new(decoder);
        let mut walked = Walked {
            databases: Vec::new(),
            at_commit: Vec::new(),
            ignored: Vec::new(),
        };
        let mut pending: BTreeMap<(String, String), Pending> = BTreeMap::new();
        let mut top_seen = false;
        let unreadable = |e| crate::archive::unreadable(&self.key, e);
        for entry in tar.entries().map_err(unreadable)? {
            let mut entry = entry.map_err(unreadable)?;
            let path = entry.path().map_err(unreadable)?.into_owned();
            crate::archive::check_entry(&path, entry.header().entry_type()).map_err(|why| {
                Error::new(ErrorKind::Archive, format!("refusing {}: {why}", self.key))
            })?;
            let parts: Vec<String> = path
                .components()
                .filter_map(|c| match c {
                    Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect();
            if parts.first() != Some(&self.top) {
                continue; // outside the dump folder: never restored from an extracted archive either
            }
            top_seen = true;
            let [_, db, rest @ ..] = parts.as_slice() else {
                continue;
            };
            if !self.db_name.is_empty() && *db != self.db_name {
                continue;
            }
            let target = self.target_of(db, &mut walked)?;
            let [file] = rest else {
                continue; // the database folder itself, or deeper than a dump goes
            };
            if !entry.header().entry_type().is_file() {
                walked.ignored.push(format!("{db}/{file}"));
                continue;
            }
            let shown = format!("{}:{}", self.key, path.display());
            if let Some(stem) = file.strip_suffix(".metadata.json") {
                let mut text = String::new();
                (&mut entry)
                    .take(MAX_METADATA)
                    .read_to_string(&mut text)
                    .map_err(unreadable)?;
                let metadata = Metadata::from_json(&text, Path::new(&shown))?;
                let slot = pending.entry((db.clone(), stem.to_string())).or_default();
                match slot.spool.take() {
                    Some(spool) => {
                        pending.remove(&(db.clone(), stem.to_string()));
                        let shown = format!("{}:{}/{db}/{stem}.bson", self.key, self.top);
                        let documents = Source::Spooled(spool);
                        self.collection(
                            &target,
                            stem,
                            metadata,
                            documents,
                            &shown,
                            &incoming,
                            &mut walked,
                        )?;
                    }
                    None => slot.metadata = Some(metadata),
                }
            } else if let Some(stem) = file.strip_suffix(".bson") {
                match pending
                    .remove(&(db.clone(), stem.to_string()))
                    .and_then(|p| p.metadata)
                {
                    Some(metadata) => self.collection(
                        &target,
                        stem,
                        metadata,
                        Source::Entry(&mut entry),
                        &shown,
                        &incoming,
                        &mut walked,
                    )?,
                    None => {
                        let spool = self.spool(&mut entry, &shown)?;
                        pending
                            .entry((db.clone(), stem.to_string()))
                            .or_default()
                            .spool = Some(spool);
                    }
                }
            } else {
                walked.ignored.push(format!("{db}/{file}"));
            }
        }
        // Halves whose other half never came: metadata alone (an empty collection, a view), or a
        // `.bson` without metadata (restored with default options, as from a folder).
        for ((db, stem), p) in std::mem::take(&mut pending) {
            let target = self.target_of(&db, &mut walked)?;
            let metadata = p.metadata.unwrap_or_default();
            let mut nothing = std::io::empty();
            let documents = match p.spool {
                Some(spool) => Source::Spooled(spool),
                None => Source::Entry(&mut nothing),
            };
            let shown = format!("{}:{}/{db}/{stem}.bson", self.key, self.top);
            self.collection(
                &target,
                &stem,
                metadata,
                documents,
                &shown,
                &incoming,
                &mut walked,
            )?;
        }
        // tar stops at its end-of-archive blocks; the codec's checks come after them.
        std::io::copy(&mut tar.into_inner(), &mut std::io::sink()).map_err(unreadable)?;
        if !top_seen {
            return Err(Error::new(
                ErrorKind::Archive,
                format!(
                    "{} holds no {}/ folder: nothing was restored",
                    self.key, self.top
                ),
            ));
        }
        if !self.db_name.is_empty() && walked.databases.is_empty() {
            if !self.missing_is_empty {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!(
                        "no dump to restore: {} holds no {}/{} folder",
                        self.key, self.top, self.db_name
                    ),
                ));
            }
            log::warn!(
                "{} holds no {}/{}: the database was empty",
                self.key,
                self.top,
                self.db_name
            );
            walked.databases.push(self.target_name(&self.db_name));
        }
        Ok(walked)
    }

    /// The name the dump's database `db` restores under.
    fn target_name(&self, db: &str) -> String {
        match (&self.target_db, &self.db_prefix) {
            (Some(target), _) => target.clone(),
            (None, Some(prefix)) => crate::mongo::replay::engine::prefixed_name(prefix, db),
            (None, None) => db.to_string(),
        }
    }

    /// The database `db` of the dump restores into; the first time, it joins the list.
    fn target_of(&self, db: &str, walked: &mut Walked) -> Result<String> {
        let target = self.target_name(db);
        if !walked.databases.contains(&target) {
            if self.target_db.is_some() && !walked.databases.is_empty() {
                return Err(Error::config(
                    "--target-db needs db_name: the backup holds several databases",
                ));
            }
            walked.databases.push(target.clone());
        }
        Ok(target)
    }

    /// A collection whose documents are read from `documents`: staged (sent to the writer batch
    /// by batch), or kept in a spool file for the commit.
    #[allow(clippy::too_many_arguments)] // the collection, its bytes, and where each goes
    fn collection(
        &self,
        target: &str,
        stem: &str,
        metadata: Metadata,
        documents: Source<'_>,
        shown: &str,
        incoming: &mpsc::Sender<Incoming>,
        walked: &mut Walked,
    ) -> Result<()> {
        let name = match collection_name(stem, &metadata) {
            Ok(name) => name,
            Err(why) => {
                walked.ignored.push(why);
                return Ok(());
            }
        };
        if restored_at_commit(&name, &metadata) {
            let spool = match documents {
                Source::Spooled(path) => path,
                Source::Entry(reader) => self.spool(reader, shown)?,
            };
            walked.at_commit.push((
                target.to_string(),
                DumpedCollection {
                    name,
                    bson: Some(spool),
                    metadata,
                },
            ));
            return Ok(());
        }
        let (mut file, _spooled);
        let reader: &mut dyn Read = match documents {
            Source::Entry(reader) => reader,
            Source::Spooled(path) => {
                file = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
                _spooled = RemoveOnDrop(path);
                &mut file
            }
        };
        let (batches, received) = mpsc::channel(4);
        incoming
            .blocking_send(Incoming {
                db: target.to_string(),
                name,
                metadata,
                documents: Documents::Stream(received, None),
            })
            .map_err(|_| stopped())?;
        let mut reader =
            BsonReader::new(BufReader::with_capacity(1 << 20, reader), Path::new(shown));
        loop {
            match reader.next_batch(self.batch_bytes) {
                Ok(batch) if batch.is_empty() => return Ok(()),
                Ok(batch) => batches.blocking_send(Ok(batch)).map_err(|_| stopped())?,
                Err(e) => {
                    let _ = batches.blocking_send(Err(Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            }
        }
    }

    /// Copies `reader` into a new file of the spool folder.
    fn spool(&self, reader: &mut dyn Read, shown: &str) -> Result<PathBuf> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.spool_dir.join(format!("{n}.bson"));
        let mut out = crate::private::create_file(&path)?;
        std::io::copy(reader, &mut out)
            .map_err(|e| Error::io("spool", &path, e).with_context("entry", shown.to_string()))?;
        out.flush().map_err(|e| Error::io("write", &path, e))?;
        Ok(path)
    }
}

/// Where a collection's documents are read from.
enum Source<'a> {
    /// The archive entry being read.
    Entry(&'a mut dyn Read),
    /// A `.bson` that came before its metadata, waiting in a spool file.
    Spooled(PathBuf),
}

/// A spool file, removed once its documents have been sent on.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn stopped() -> Error {
    Error::new(
        ErrorKind::Internal,
        "the restore stopped reading the archive",
    )
}
