//! A full dump whose stages overlap: each collection's files go into the archive as soon as the dump
//! has finished them (and then leave the local disk), and the archive's bytes go to the bucket as
//! multipart parts while it grows. The wall time is the slowest stage's, not their sum; local disk
//! holds the archive and the collections in flight.
//!
//! By default the archive is also written locally in full (`local_copy=1`): a streamed upload that
//! fails (or outgrows the part limit) costs nothing but time, the caller uploads the finished
//! archive. With `local_copy=0` only the collections in flight touch the disk; the archive's size
//! and CRC64 are counted as it streams, and a failed stream fails the run (the next one dumps
//! again). Either way the caller's `seal` step (the sidecar of an incremental cycle) runs once the
//! archive is complete (and fsynced, when kept), and only then may the upload complete; a run
//! killed before leaves an unfinished multipart upload, which the bucket never lists.

use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use crate::archive::{self, ArchiveStats, Growing};
use crate::config::Settings;
use crate::error::{Error, ErrorKind, Result};
use crate::mongo::dump::{self, CollectionDump, DumpOptions, FinishedFile, SPOOL_SUFFIX};
use crate::mongo::Mongo;
use crate::progress::Progress;
use crate::storage::{Crc64, PartStream, Storage, VerifiedUpload};

/// Parts a streamed upload may use; past this the archive is uploaded once finished, with parts
/// sized for it (OSS and S3 allow 10,000).
const MAX_STREAMED_PARTS: usize = 9_000;

/// Parts waiting between the compressor and the uploader (each `part_size` bytes of memory).
const PARTS_QUEUED: usize = 2;

/// The archive file (when kept), what went in, its CRC64 and size (when not kept), and why the
/// archive gave its stream up, if it did.
type Archived = (
    Option<File>,
    ArchiveStats,
    Option<(u64, u64)>,
    Option<String>,
);

/// What to dump and where the archive goes.
pub struct DumpJob<'a> {
    pub mongo: &'a Mongo,
    pub settings: &'a Settings,
    /// The dump's folder (`<db>/…` below it); the archive holds it as `<its name>/…`.
    pub dir: &'a Path,
    pub archive_path: &'a Path,
    /// A database without collections is a valid dump (incremental cycles).
    pub allow_empty: bool,
    pub progress: &'a Progress,
}

/// What `dump_and_archive` did.
pub struct Dumped<T> {
    pub collections: Vec<CollectionDump>,
    pub stats: ArchiveStats,
    /// What the caller's `seal` step returned.
    pub sealed: T,
    /// The streamed upload: `None` when none was made, `Some(Err)` when it failed (the archive is
    /// complete locally: upload it). Always `Some(Ok)` without a local copy.
    pub streamed: Option<Result<VerifiedUpload>>,
    /// The archive's size and CRC64 as streamed, when no local copy was kept.
    pub streamed_crc64: Option<u64>,
}

/// A dump with no bucket to go to: the folder is the backup. A failed dump leaves nothing behind
/// that looks like one.
pub async fn dump_only(job: &DumpJob<'_>) -> Result<Vec<CollectionDump>> {
    let opts = DumpOptions {
        allow_empty: job.allow_empty,
        progress: job.progress.clone(),
        ..Default::default()
    };
    let dumped = dump::dump(job.mongo, &job.settings.db_name, job.dir, &opts).await;
    if dumped.is_err() {
        let _ = std::fs::remove_dir_all(job.dir);
    }
    dumped
}

/// Dumps into `job.dir` while archiving into `job.archive_path` and, when `upload` names a bucket
/// that hides unfinished uploads and a key, uploading the archive as it grows. `seal` runs once the
/// archive is complete and fsynced, before the upload may complete. On an error the upload is
/// aborted, and the dump's folder and the archive are removed: a partial dump is no backup.
/// `seal` gets the collections and the archive's figures (its CRC64 when not kept locally).
pub async fn dump_and_archive<T, F, Fut>(
    job: &DumpJob<'_>,
    upload: Option<(&dyn Storage, &str)>,
    seal: F,
) -> Result<Dumped<T>>
where
    F: FnOnce(Vec<CollectionDump>, ArchiveStats, Option<u64>) -> Fut,
    Fut: Future<Output = Result<(Vec<CollectionDump>, T)>>,
{
    let done = overlapped(job, upload, seal).await;
    if done.is_err() {
        let _ = std::fs::remove_dir_all(job.dir);
        let _ = std::fs::remove_file(job.archive_path);
    }
    done
}

async fn overlapped<T, F, Fut>(
    job: &DumpJob<'_>,
    upload: Option<(&dyn Storage, &str)>,
    seal: F,
) -> Result<Dumped<T>>
where
    F: FnOnce(Vec<CollectionDump>, ArchiveStats, Option<u64>) -> Fut,
    Fut: Future<Output = Result<(Vec<CollectionDump>, T)>>,
{
    let upload = upload.and_then(|(s, key)| Some((s, key, s.stream_part_size()?)));
    let keep = job.settings.local_copy;
    if !keep && upload.is_none() {
        return Err(Error::config(format!(
            "local_copy=0: {} cannot be streamed to the bucket, and no local archive is kept",
            job.archive_path.display()
        )));
    }
    let (parts_tx, parts_rx) = mpsc::channel::<Vec<u8>>(PARTS_QUEUED);
    let (commit_tx, commit_rx) = oneshot::channel::<()>();
    let tee = Tee {
        file: match keep {
            true => Some(crate::private::create_file(job.archive_path)?),
            false => None,
        },
        tally: (!keep).then(|| (Crc64::default(), 0)),
        parts: upload.map(|(_, _, size)| (parts_tx, size)),
        buffer: Vec::new(),
        sent: 0,
    };

    let (files_tx, files_rx) = std::sync::mpsc::channel::<FinishedFile>();
    let dump_done = Arc::new(AtomicBool::new(false));
    let archiver = {
        let (src, dest) = (job.dir.to_path_buf(), job.archive_path.to_path_buf());
        let (codec, recipients) = (job.settings.codec, job.settings.encryption.clone());
        let (progress, dump_done) = (job.progress.clone(), dump_done.clone());
        tokio::task::spawn_blocking(move || -> Result<Archived> {
            let mut archive =
                Growing::start(&src, tee, &dest, &codec, recipients.as_ref(), &progress)?;
            for file in files_rx {
                archive.add_and_remove(&file.path, file.spooled_size, SPOOL_SUFFIX)?;
            }
            // The sender is gone: the dump ended, or failed (then nothing more is worth writing).
            if !dump_done.load(Ordering::SeqCst) {
                return Err(Error::new(ErrorKind::Internal, "the dump did not finish"));
            }
            archive.add_rest()?;
            let (tee, stats) = archive.finish()?;
            let end = tee
                .finish()
                .map_err(|e| Error::io("write archive", &dest, e))?;
            Ok((end.file, stats, end.tally, end.gave_up))
        })
    };

    let work = async move {
        let opts = DumpOptions {
            allow_empty: job.allow_empty,
            progress: job.progress.clone(),
            finished_files: Some(files_tx),
            ..Default::default()
        };
        let dumped = dump::dump(job.mongo, &job.settings.db_name, job.dir, &opts).await;
        if dumped.is_ok() {
            dump_done.store(true, Ordering::SeqCst);
        }
        drop(opts); // the archiver's channel ends here
        let archived = archiver
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, format!("archive task failed: {e}")));
        let collections = dumped?;
        crate::hooks::crash_point("after_dump");
        let (file, mut stats, tally, gave_up) = archived??;
        let crc64 = match (file, tally) {
            (Some(file), _) => {
                stats = archive::finish_file(&file, job.archive_path, stats)?;
                None
            }
            (None, Some((crc64, size))) => {
                stats.archive_bytes = size;
                Some(crc64)
            }
            (None, None) => None,
        };
        crate::hooks::crash_point("after_archive");
        if let (false, Some(why)) = (keep, &gave_up) {
            return Err(Error::new(
                ErrorKind::Storage,
                format!("{why}; local_copy=0 keeps no archive to upload instead: raise upload_part_size_mb"),
            ));
        }
        let (collections, sealed) = seal(collections, stats, crc64).await?;
        if gave_up.is_none() {
            let _ = commit_tx.send(());
        }
        Ok((collections, stats, sealed, gave_up, crc64))
    };

    let streamed = async move {
        let (storage, key, part_size) = upload?;
        let task = job.progress.transfer(format!("upload {key}"), None);
        let parts = committed_parts(parts_rx, commit_rx);
        let done = storage
            .put_parts(key, part_size, parts, &|sent| task.report(sent))
            .await;
        if let Ok(done) = &done {
            task.finish_at(done.size);
        }
        Some(done)
    };

    let (work, streamed) = tokio::join!(work, streamed);
    let (collections, stats, sealed, gave_up, streamed_crc64) = work?;
    // When the archive gave the stream up, the upload's own error (no commit) would say nothing.
    let streamed = match (streamed, gave_up) {
        (Some(_), Some(why)) => Some(Err(Error::new(ErrorKind::Storage, why))),
        (streamed, _) => streamed,
    };
    if let (false, Some(Err(e))) = (keep, &streamed) {
        return Err(Error::new(
            e.kind(),
            format!("{e}; local_copy=0 keeps no archive to upload again: the next run dumps again"),
        ));
    }
    Ok(Dumped {
        collections,
        stats,
        sealed,
        streamed,
        streamed_crc64,
    })
}

/// The parts the archive sends, ending only once `commit` says the archive is sealed: a sender
/// gone without it (a failed run) ends the stream with an error, which aborts the upload.
fn committed_parts(
    parts: mpsc::Receiver<Vec<u8>>,
    commit: oneshot::Receiver<()>,
) -> PartStream<'static> {
    futures::stream::unfold(
        (parts, Some(commit)),
        |(mut parts, mut commit)| async move {
            if let Some(part) = parts.recv().await {
                return Some((Ok(part), (parts, commit)));
            }
            match commit.take()?.await {
                Ok(()) => None,
                Err(_) => Some((
                    Err(Error::new(
                        ErrorKind::Internal,
                        "the archive was not finished: its upload is abandoned",
                    )),
                    (parts, None),
                )),
            }
        },
    )
    .boxed()
}

/// The archive file, with a copy of its bytes cut into upload parts. When the uploader is gone (a
/// failed upload) or the archive outgrows the part limit, only the file goes on.
struct Tee {
    /// The local copy, when kept.
    file: Option<File>,
    /// Without one: the CRC64 and size of what went through.
    tally: Option<(Crc64, u64)>,
    /// The uploader and the part size, while streaming.
    parts: Option<(mpsc::Sender<Vec<u8>>, usize)>,
    buffer: Vec<u8>,
    sent: usize,
}

/// What a finished tee leaves: the file (when kept), the CRC64 and size of what went through
/// (when not), and why the stream was given up, if it was.
struct TeeEnd {
    file: Option<File>,
    tally: Option<(u64, u64)>,
    gave_up: Option<String>,
}

impl Tee {
    /// Sends what is left as the last part. Returns the file, and why the stream was given up
    /// here, if it was (an uploader that failed has its own error to tell).
    fn finish(mut self) -> std::io::Result<TeeEnd> {
        if let Some(file) = &mut self.file {
            file.flush()?;
        }
        if let Some((to, _)) = self.parts.take() {
            let last = std::mem::take(&mut self.buffer);
            if !last.is_empty() {
                let _ = to.blocking_send(last);
            }
        }
        let gave_up = (self.sent >= MAX_STREAMED_PARTS).then(|| {
            format!("the archive outgrew {MAX_STREAMED_PARTS} parts of upload_part_size_mb")
        });
        Ok(TeeEnd {
            file: self.file,
            tally: self.tally.map(|(crc, size)| (crc.value(), size)),
            gave_up,
        })
    }
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = match &mut self.file {
            Some(file) => file.write(buf)?,
            None => buf.len(),
        };
        if let Some((crc, size)) = &mut self.tally {
            crc.update(&buf[..n]);
            *size += n as u64;
        }
        if let Some((to, part_size)) = &self.parts {
            let part_size = *part_size;
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                let take = rest.len().min(part_size - self.buffer.len());
                self.buffer.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if self.buffer.len() == part_size {
                    let part = std::mem::replace(&mut self.buffer, Vec::with_capacity(part_size));
                    self.sent += 1;
                    if self.sent >= MAX_STREAMED_PARTS || to.blocking_send(part).is_err() {
                        // The uploader failed, or the parts would run out: the file goes on.
                        self.parts = None;
                        self.buffer = Vec::new();
                        break;
                    }
                }
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The upload may complete only once the archive is sealed: parts without the commit (a run
    /// that failed after sending them) end in an error, which aborts the multipart upload.
    #[tokio::test]
    async fn parts_end_only_with_the_commit() {
        for committed in [true, false] {
            let (parts_tx, parts_rx) = mpsc::channel(2);
            let (commit_tx, commit_rx) = oneshot::channel();
            let stream = committed_parts(parts_rx, commit_rx);
            parts_tx.send(vec![1u8; 3]).await.unwrap();
            drop(parts_tx);
            if committed {
                commit_tx.send(()).unwrap();
            } else {
                drop(commit_tx);
            }
            let got: Vec<_> = stream.collect().await;
            assert_eq!(got.len(), if committed { 1 } else { 2 });
            assert_eq!(got[0].as_ref().unwrap(), &vec![1u8; 3]);
            assert_eq!(got.last().unwrap().is_err(), !committed);
        }
    }

    /// The tee writes every byte to the file and cuts the same bytes into parts of exactly the
    /// part size (the last one shorter), as S3's multipart ETag needs.
    #[test]
    fn tee_cuts_the_file_into_parts() {
        let tmp = tempfile::tempdir().unwrap();
        let (parts_tx, mut parts_rx) = mpsc::channel(16);
        let mut tee = Tee {
            file: Some(File::create(tmp.path().join("a")).unwrap()),
            tally: None,
            parts: Some((parts_tx, 10)),
            buffer: Vec::new(),
            sent: 0,
        };
        let data: Vec<u8> = (0..=255u8).cycle().take(47).collect();
        for chunk in data.chunks(7) {
            tee.write_all(chunk).unwrap();
        }
        assert_eq!(tee.finish().unwrap().gave_up, None);
        let mut parts = Vec::new();
        while let Ok(part) = parts_rx.try_recv() {
            parts.push(part);
        }
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 10, 10, 7]);
        assert_eq!(parts.concat(), data);
        assert_eq!(std::fs::read(tmp.path().join("a")).unwrap(), data);
    }

    /// An uploader that failed stops the stream, not the archive (nor is it the archive's doing).
    #[test]
    fn tee_outlives_its_uploader() {
        let tmp = tempfile::tempdir().unwrap();
        let (parts_tx, parts_rx) = mpsc::channel(16);
        drop(parts_rx);
        let mut tee = Tee {
            file: Some(File::create(tmp.path().join("a")).unwrap()),
            tally: None,
            parts: Some((parts_tx, 4)),
            buffer: Vec::new(),
            sent: 0,
        };
        tee.write_all(&[9u8; 30]).unwrap();
        assert!(tee.parts.is_none());
        assert_eq!(tee.finish().unwrap().gave_up, None);
        assert_eq!(std::fs::read(tmp.path().join("a")).unwrap(), [9u8; 30]);
    }

    /// Without a local copy, the tee counts what streamed: the size and CRC64 a later run checks
    /// the stored object against.
    #[test]
    fn tee_without_a_file_tallies_the_stream() {
        let (parts_tx, mut parts_rx) = mpsc::channel(16);
        let mut tee = Tee {
            file: None,
            tally: Some((Crc64::default(), 0)),
            parts: Some((parts_tx, 8)),
            buffer: Vec::new(),
            sent: 0,
        };
        tee.write_all(b"123456789").unwrap();
        let end = tee.finish().unwrap();
        assert!(end.file.is_none() && end.gave_up.is_none());
        // CRC-64/XZ (OSS's CRC64) of the catalogue's check input.
        assert_eq!(end.tally, Some((0x995d_c9bb_df19_39fa, 9)));
        assert_eq!(parts_rx.try_recv().unwrap(), b"12345678");
        assert_eq!(parts_rx.try_recv().unwrap(), b"9");
    }
}
