//! Streaming tar archives in the layout of the old scripts (COMPAT §2.5, §3): archiving directory
//! `X` gives entries `X/...`, readable by GNU tar, compressed as `codec` says (gzip, or zstd).
//! Extraction accepts GNU tar's and Python tarfile's archives, either codec (by magic bytes), and
//! refuses entries that would land outside the target (absolute paths, `..`) and links of any kind
//! (a dump has none). Memory stays constant: data flows file → compressor → file.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use crate::codec::{Codec, Encoder};
use crate::crypt::{Identity, Output, Recipients};
use crate::error::{Error, ErrorKind, Result};
use crate::progress::{Progress, Task, Unit};

/// What `create` wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveStats {
    pub files: u64,
    /// Bytes of file content before compression.
    pub input_bytes: u64,
    /// Size of the archive.
    pub archive_bytes: u64,
}

/// Archives directory `src` into the file `dest`, entries named `<basename of src>/...`, sealed
/// for `recipients` when given. The archive is fsynced before returning, and created 0600 (it
/// holds the whole database).
pub fn create(
    src: &Path,
    dest: &Path,
    codec: &Codec,
    recipients: Option<&Recipients>,
    progress: &Progress,
) -> Result<ArchiveStats> {
    let file = crate::private::create_file(dest)?;
    let mut archive = Growing::start(src, file, dest, codec, recipients, progress)?;
    archive.add_rest()?;
    let (file, stats) = archive.finish()?;
    finish_file(&file, dest, stats)
}

/// Fsyncs a finished archive file and fills in its size.
pub fn finish_file(file: &File, dest: &Path, mut stats: ArchiveStats) -> Result<ArchiveStats> {
    file.sync_all().map_err(|e| Error::io("fsync", dest, e))?;
    stats.archive_bytes = file
        .metadata()
        .map_err(|e| Error::io("stat", dest, e))?
        .len();
    Ok(stats)
}

/// An archive of directory `src` written while `src` is still being filled (a dump in progress):
/// each finished file is appended as soon as it is handed over and then removed, so local disk
/// holds only the archive and the files in flight. Folders come before what they hold; files
/// come in the order they are added, then whatever `add_rest` finds. Entries are named
/// `<basename of src>/...` as `create` names them.
pub struct Growing<W: Write + Send + 'static> {
    builder: tar::Builder<Encoder<Output<W>>>,
    src: PathBuf,
    name: PathBuf,
    dest: PathBuf,
    /// Folders (relative to `src`) already in the archive.
    folders: HashSet<PathBuf>,
    stats: ArchiveStats,
    task: Task,
}

impl<W: Write + Send + 'static> Growing<W> {
    /// Starts the archive of `src` in `out` (`dest` names it in messages).
    pub fn start(
        src: &Path,
        out: W,
        dest: &Path,
        codec: &Codec,
        recipients: Option<&Recipients>,
        progress: &Progress,
    ) -> Result<Self> {
        let name = src.file_name().ok_or_else(|| {
            Error::new(
                ErrorKind::Archive,
                format!("cannot archive {}: it has no name", src.display()),
            )
        })?;
        let output =
            Output::new(out, recipients).map_err(|e| Error::io("write archive", dest, e))?;
        let encoder = codec
            .encoder(output)
            .map_err(|e| Error::io("write archive", dest, e))?;
        let mut builder = tar::Builder::new(encoder);
        builder.follow_symlinks(false);
        let task = progress.task(
            format!("archive {}", name.to_string_lossy()),
            Unit::Bytes,
            None,
        );
        let mut archive = Growing {
            builder,
            src: src.to_path_buf(),
            name: PathBuf::from(name),
            dest: dest.to_path_buf(),
            folders: HashSet::new(),
            stats: ArchiveStats {
                files: 0,
                input_bytes: 0,
                archive_bytes: 0,
            },
            task,
        };
        archive.add_folder(Path::new(""))?;
        Ok(archive)
    }

    /// Appends the finished file `path` (inside `src`), with the folders above it, then removes it.
    /// A file spooled through zstd (`spooled_size` = its content's size) goes in as its content,
    /// named without `spool_suffix`.
    pub fn add_and_remove(
        &mut self,
        path: &Path,
        spooled_size: Option<u64>,
        spool_suffix: &str,
    ) -> Result<()> {
        let rel = path.strip_prefix(&self.src).map_err(|_| {
            Error::new(
                ErrorKind::Internal,
                format!("{} is not inside {}", path.display(), self.src.display()),
            )
        })?;
        let mut above = PathBuf::new();
        for part in rel.parent().into_iter().flat_map(Path::components) {
            above.push(part);
            self.add_folder(&above.clone())?;
        }
        match spooled_size {
            None => self.add_file(path, rel)?,
            Some(size) => {
                let name = rel.to_string_lossy();
                let plain = Path::new(name.strip_suffix(spool_suffix).unwrap_or(&name));
                self.add_spooled(path, plain, size)?;
            }
        }
        std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e))
    }

    /// Appends the zstd content of spool `path` as entry `rel`, which must be `size` bytes.
    fn add_spooled(&mut self, path: &Path, rel: &Path, size: u64) -> Result<()> {
        let appended = (|| {
            let f = File::open(path)?;
            let mut header = tar::Header::new_gnu();
            header.set_metadata(&f.metadata()?);
            header.set_size(size);
            let decoder = zstd::stream::read::Decoder::new(f)?;
            // Exactly `size` bytes, or the entry would not match its header.
            let mut content = ExactSize {
                inner: decoder,
                left: size,
            };
            let mut counted = Counted {
                inner: &mut content,
                task: &mut self.task,
            };
            self.builder
                .append_data(&mut header, self.name.join(rel), &mut counted)?;
            match content.left {
                0 => Ok(()),
                left => Err(std::io::Error::other(format!(
                    "the spool holds {left} bytes fewer than the dump wrote"
                ))),
            }
        })();
        self.stats.input_bytes += size;
        self.stats.files += 1;
        appended.map_err(|e| Error::io("archive", path, e))
    }

    /// Appends everything still in `src` that is not in the archive yet, in sorted order.
    pub fn add_rest(&mut self) -> Result<()> {
        self.add_tree(Path::new(""))
    }

    /// Ends the compressed (and sealed) stream. Returns the writer, to fsync it, and what went in.
    pub fn finish(self) -> Result<(W, ArchiveStats)> {
        self.task.finish();
        let dest = self.dest.clone();
        let encoder = self
            .builder
            .into_inner()
            .map_err(|e| Error::io("write archive", &dest, e))?;
        let out = encoder
            .finish()
            .and_then(Output::finish)
            .map_err(|e| Error::io("write archive", &dest, e))?;
        Ok((out, self.stats))
    }

    fn add_tree(&mut self, rel: &Path) -> Result<()> {
        self.add_folder(rel)?;
        let dir = self.src.join(rel);
        let mut children: Vec<_> = std::fs::read_dir(&dir)
            .and_then(|entries| entries.collect::<std::io::Result<_>>())
            .map_err(|e| Error::io("archive", &dir, e))?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let child_rel = rel.join(child.file_name());
            let kind = child
                .file_type()
                .map_err(|e| Error::io("archive", &child.path(), e))?;
            if kind.is_dir() {
                self.add_tree(&child_rel)?;
            } else if kind.is_file() {
                self.add_file(&child.path(), &child_rel)?;
            } else {
                let entry_name = self.name.join(&child_rel);
                self.builder
                    .append_path_with_name(child.path(), entry_name)
                    .map_err(|e| Error::io("archive", &child.path(), e))?;
            }
        }
        Ok(())
    }

    fn add_folder(&mut self, rel: &Path) -> Result<()> {
        if !self.folders.insert(rel.to_path_buf()) {
            return Ok(());
        }
        let dir = self.src.join(rel);
        // `name.join("")` would end in a slash: the top folder is named as `create` always named it.
        let entry_name = if rel.as_os_str().is_empty() {
            self.name.clone()
        } else {
            self.name.join(rel)
        };
        self.builder
            .append_dir(entry_name, &dir)
            .map_err(|e| Error::io("archive", &dir, e))
    }

    fn add_file(&mut self, path: &Path, rel: &Path) -> Result<()> {
        let appended = (|| {
            let mut f = File::open(path)?;
            let meta = f.metadata()?;
            self.stats.input_bytes += meta.len();
            self.stats.files += 1;
            let mut header = tar::Header::new_gnu();
            header.set_metadata(&meta);
            let mut counted = Counted {
                inner: &mut f,
                task: &mut self.task,
            };
            self.builder
                .append_data(&mut header, self.name.join(rel), &mut counted)
        })();
        appended.map_err(|e| Error::io("archive", path, e))
    }
}

/// A reader that gives `left` bytes at most and refuses to hold more.
struct ExactSize<R> {
    inner: R,
    left: u64,
}

impl<R: std::io::Read> std::io::Read for ExactSize<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return match self.inner.read(&mut [0u8; 1])? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(
                    "the spool holds more bytes than the dump wrote",
                )),
            };
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// A reader that reports the bytes read through it to a progress task.
struct Counted<'a, R> {
    inner: R,
    task: &'a mut Task,
}

impl<R: std::io::Read> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.task.add(0, n as u64);
        Ok(n)
    }
}

/// Extracts `archive` into directory `dest` (created if needed), opening it with `identity` when
/// it is sealed. Returns the top-level names.
pub fn extract(archive: &Path, dest: &Path, identity: Option<&Identity>) -> Result<Vec<String>> {
    let bad = |why: String| {
        Error::new(
            ErrorKind::Archive,
            format!("refusing to extract {}: {why}", archive.display()),
        )
    };
    let file = File::open(archive).map_err(|e| Error::io("open archive", archive, e))?;
    let mut dirs = std::fs::DirBuilder::new();
    dirs.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        dirs.mode(0o700); // what it holds is a backup
    }
    let plain = crate::crypt::reader(file, identity, &archive.display().to_string())?;
    dirs.create(dest)
        .map_err(|e| Error::io("create directory", dest, e))?;
    let (_, decoder) = crate::codec::decoder(plain).map_err(|e| corrupt(archive, e))?;
    let mut tar = tar::Archive::new(decoder);
    tar.set_overwrite(true);
    let mut tops: Vec<String> = Vec::new();
    let entries = tar.entries().map_err(|e| corrupt(archive, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(archive, e))?;
        let path = entry.path().map_err(|e| corrupt(archive, e))?.into_owned();
        check_entry(&path, entry.header().entry_type()).map_err(bad)?;
        if let Some(Component::Normal(top)) = path.components().next() {
            let top = top.to_string_lossy().into_owned();
            if !tops.contains(&top) {
                tops.push(top);
            }
        }
        let unpacked = entry.unpack_in(dest).map_err(|e| {
            Error::io("extract into", dest, e).with_context("entry", path.display().to_string())
        })?;
        if !unpacked {
            return Err(bad(format!("entry {} escapes the target", path.display())));
        }
    }
    // tar stops at its end-of-archive blocks; gzip's CRC32 and length (zstd's checks) come after
    // them. Reading to the end is what checks them (and refuses bytes appended after).
    std::io::copy(&mut tar.into_inner(), &mut std::io::sink()).map_err(|e| corrupt(archive, e))?;
    Ok(tops)
}

/// Reads an unsealed `archive` to its end without extracting it: every entry's path checked, the
/// codec's own checks made. Returns the codec and the top-level names. It tells a finished archive
/// from one cut short.
pub fn read_through(archive: &Path) -> Result<(crate::codec::Kind, Vec<String>)> {
    read_through_with(archive, |_, _| Ok(()))
}

/// `read_through`, handing each file entry to `visit` (which may read it, or not) on the way.
pub fn read_through_with(
    archive: &Path,
    mut visit: impl FnMut(&Path, &mut dyn std::io::Read) -> Result<()>,
) -> Result<(crate::codec::Kind, Vec<String>)> {
    let file = File::open(archive).map_err(|e| Error::io("open archive", archive, e))?;
    let (kind, decoder) = crate::codec::decoder(file).map_err(|e| corrupt(archive, e))?;
    let mut tar = tar::Archive::new(decoder);
    let mut tops: Vec<String> = Vec::new();
    for entry in tar.entries().map_err(|e| corrupt(archive, e))? {
        let mut entry = entry.map_err(|e| corrupt(archive, e))?;
        let path = entry.path().map_err(|e| corrupt(archive, e))?.into_owned();
        check_entry(&path, entry.header().entry_type())
            .map_err(|why| Error::new(ErrorKind::Archive, why))?;
        if let Some(Component::Normal(top)) = path.components().next() {
            let top = top.to_string_lossy().into_owned();
            if !tops.contains(&top) {
                tops.push(top);
            }
        }
        if entry.header().entry_type().is_file() {
            visit(&path, &mut entry)?;
        }
        std::io::copy(&mut entry, &mut std::io::sink()).map_err(|e| corrupt(archive, e))?;
    }
    std::io::copy(&mut tar.into_inner(), &mut std::io::sink()).map_err(|e| corrupt(archive, e))?;
    Ok((kind, tops))
}

/// What an archive entry may be: a file or folder whose path stays inside the target. A link,
/// even one pointing inside, could be written through by a later entry or a later extraction
/// into the same place. `Err` says why not.
pub fn check_entry(path: &Path, kind: tar::EntryType) -> std::result::Result<(), String> {
    check_inside(path).map_err(|why| format!("entry {}: {why}", path.display()))?;
    if kind.is_symlink() || kind.is_hard_link() {
        return Err(format!(
            "entry {} is a link (a backup holds files and folders only)",
            path.display()
        ));
    }
    Ok(())
}

/// A relative path that stays below its root after resolving `.` and `..`.
fn check_inside(path: &Path) -> std::result::Result<(), &'static str> {
    let mut depth: usize = 0;
    for c in path.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => return Err("absolute path"),
            Component::ParentDir => {
                depth = depth
                    .checked_sub(1)
                    .ok_or("path leaves the target directory")?;
            }
            Component::CurDir => {}
            Component::Normal(_) => depth += 1,
        }
    }
    Ok(())
}

fn corrupt(archive: &Path, e: std::io::Error) -> Error {
    unreadable(&archive.display().to_string(), e)
}

/// `what` (a file, a key) does not read as an archive.
pub fn unreadable(what: &str, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Archive,
        format!("{what} is not a readable archive (tar.gz or tar.zst): {e}"),
    )
    .with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_names_and_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("full_backup");
        std::fs::create_dir_all(src.join("app")).unwrap();
        std::fs::write(src.join("app/c.bson"), vec![7u8; 300_000]).unwrap();
        std::fs::write(src.join("app/c.metadata.json"), b"{}").unwrap();
        let long = "x".repeat(180);
        std::fs::write(src.join("app").join(&long), b"long").unwrap();
        let dest = crate::layout::archive_path_for(&src, crate::codec::Kind::Gzip);
        let stats = create(&src, &dest, &Codec::gzip(6), None, &Progress::none()).unwrap();
        assert_eq!(stats.files, 3);
        assert!(stats.archive_bytes < 10_000);
        let out = tmp.path().join("out");
        assert_eq!(
            extract(&dest, &out, None).unwrap(),
            vec!["full_backup".to_string()]
        );
        assert_eq!(
            std::fs::read(out.join("full_backup/app/c.bson")).unwrap(),
            vec![7u8; 300_000]
        );
        assert_eq!(
            std::fs::read(out.join("full_backup/app").join(long)).unwrap(),
            b"long"
        );
    }

    /// A finished archive reads through; the same cut anywhere does not.
    #[test]
    fn read_through_tells_finished_from_cut() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("mongodb_backup_titan_202603011000");
        std::fs::create_dir_all(src.join("app")).unwrap();
        let noise: Vec<u8> = (0..400_000u32).map(|i| (i * 2_654_435_761) as u8).collect();
        std::fs::write(src.join("app/c.bson"), &noise).unwrap();
        let zstd = Codec {
            kind: crate::codec::Kind::Zstd,
            level: 3,
            threads: 1,
        };
        for codec in [Codec::gzip(6), zstd] {
            let dest = crate::layout::archive_path_for(&src, codec.kind);
            create(&src, &dest, &codec, None, &Progress::none()).unwrap();
            let (kind, tops) = read_through(&dest).unwrap();
            assert_eq!(kind, codec.kind);
            assert_eq!(tops, vec!["mongodb_backup_titan_202603011000".to_string()]);
            let whole = std::fs::read(&dest).unwrap();
            for cut in [whole.len() / 2, whole.len() - 1] {
                let cut_path = tmp.path().join("cut");
                std::fs::write(&cut_path, &whole[..cut]).unwrap();
                assert!(
                    read_through(&cut_path).is_err(),
                    "{:?} cut at {cut}",
                    codec.kind
                );
            }
        }
    }

    /// Files handed over while a dump runs go in as they come (each after its folders) and leave
    /// the disk; what is left at the end (an empty database's folder) goes in too.
    #[test]
    fn growing_archive_takes_files_as_they_finish() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("full_backup");
        for (path, len) in [
            ("b/z.bson", 70_000),
            ("a/y.bson", 10),
            ("a/x.metadata.json", 2),
        ] {
            std::fs::create_dir_all(src.join(path).parent().unwrap()).unwrap();
            std::fs::write(src.join(path), vec![len as u8; len]).unwrap();
        }
        std::fs::create_dir_all(src.join("empty")).unwrap();
        let dest = tmp.path().join("full_backup.tar.gz");
        let file = File::create(&dest).unwrap();
        let mut archive =
            Growing::start(&src, file, &dest, &Codec::gzip(6), None, &Progress::none()).unwrap();
        for path in ["b/z.bson", "a/x.metadata.json"] {
            archive.add_and_remove(&src.join(path), None, "").unwrap();
            assert!(!src.join(path).exists());
        }
        archive.add_rest().unwrap();
        let (file, stats) = archive.finish().unwrap();
        let stats = finish_file(&file, &dest, stats).unwrap();
        assert_eq!((stats.files, stats.input_bytes), (3, 70_012));
        assert!(
            src.join("a/y.bson").exists(),
            "add_rest leaves the files in place"
        );

        let names: Vec<String> =
            tar::Archive::new(flate2::read::GzDecoder::new(File::open(&dest).unwrap()))
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().display().to_string())
                .collect();
        assert_eq!(
            names,
            [
                "full_backup",
                "full_backup/b",
                "full_backup/b/z.bson",
                "full_backup/a",
                "full_backup/a/x.metadata.json",
                "full_backup/a/y.bson",
                "full_backup/empty",
            ]
        );
        let out = tmp.path().join("out");
        extract(&dest, &out, None).unwrap();
        assert_eq!(
            std::fs::read(out.join("full_backup/b/z.bson")).unwrap(),
            vec![112u8; 70_000]
        );
        assert!(out.join("full_backup/empty").is_dir());
    }

    /// A `.bson` spooled through zstd goes in as its content under its own name; a spool that
    /// does not hold the size the dump wrote is refused rather than archived.
    #[test]
    fn spooled_files_go_in_as_their_content() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("full_backup");
        std::fs::create_dir_all(src.join("db")).unwrap();
        let content: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let spool = src.join("db/c.bson.spool.zst");
        std::fs::write(&spool, zstd::encode_all(&content[..], 1).unwrap()).unwrap();
        let dest = tmp.path().join("a.tar.gz");
        let file = File::create(&dest).unwrap();
        let mut archive =
            Growing::start(&src, file, &dest, &Codec::gzip(1), None, &Progress::none()).unwrap();
        archive
            .add_and_remove(&spool, Some(content.len() as u64), ".spool.zst")
            .unwrap();
        assert!(!spool.exists());
        let (_, stats) = archive.finish().unwrap();
        assert_eq!(stats.input_bytes, content.len() as u64);
        let out = tmp.path().join("out");
        extract(&dest, &out, None).unwrap();
        assert_eq!(
            std::fs::read(out.join("full_backup/db/c.bson")).unwrap(),
            content
        );

        for wrong in [content.len() as u64 - 1, content.len() as u64 + 1] {
            std::fs::write(&spool, zstd::encode_all(&content[..], 1).unwrap()).unwrap();
            let file = File::create(&dest).unwrap();
            let mut archive =
                Growing::start(&src, file, &dest, &Codec::gzip(1), None, &Progress::none())
                    .unwrap();
            let err = archive
                .add_and_remove(&spool, Some(wrong), ".spool.zst")
                .unwrap_err();
            assert!(err.to_string().contains("spool holds"), "{err}");
        }
    }

    /// A byte changed inside the data (level 0: stored deflate blocks still inflate) or a cut
    /// trailer is caught by gzip's CRC32 and length, which sit after tar's end-of-archive blocks.
    #[test]
    fn reads_to_the_gzip_trailer() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("oplog_1");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("oplog.bson"), vec![b'a'; 50_000]).unwrap();
        let dest = crate::layout::archive_path_for(&src, crate::codec::Kind::Gzip);
        create(&src, &dest, &Codec::gzip(0), None, &Progress::none()).unwrap();
        let good = std::fs::read(&dest).unwrap();
        assert!(extract(&dest, &tmp.path().join("ok"), None).is_ok());

        let mut flipped = good.clone();
        let at = flipped.windows(8).position(|w| w == b"aaaaaaaa").unwrap() + 1000;
        flipped[at] = b'b';
        std::fs::write(&dest, &flipped).unwrap();
        let err = extract(&dest, &tmp.path().join("flipped"), None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Archive, "{err}");

        std::fs::write(&dest, &good[..good.len() - 4]).unwrap();
        assert!(extract(&dest, &tmp.path().join("cut"), None).is_err());
    }

    /// A sealed archive holds no plaintext, is refused in one line without the identity (and with
    /// another), and extracts byte for byte with it.
    #[test]
    fn sealed_archives_open_only_with_their_identity() {
        let (recipients, identity) = crate::crypt::test_pair();
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("full_backup");
        std::fs::create_dir_all(src.join("shop")).unwrap();
        let content = b"findme-plaintext ".repeat(10_000);
        std::fs::write(src.join("shop/c.bson"), &content).unwrap();
        let format = crate::layout::Format {
            codec: crate::codec::Kind::Zstd,
            sealed: true,
        };
        let dest = crate::layout::archive_path_for(&src, format);
        assert!(dest.to_string_lossy().ends_with(".tar.zst.age"));
        let codec = Codec {
            kind: crate::codec::Kind::Zstd,
            level: 0,
            threads: 1,
        };
        create(&src, &dest, &codec, Some(&recipients), &Progress::none()).unwrap();
        let stored = std::fs::read(&dest).unwrap();
        assert!(crate::crypt::is_sealed(&stored));
        assert!(!stored.windows(6).any(|w| w == b"findme"));

        let err = extract(&dest, &tmp.path().join("none"), None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Encryption, "{err}");
        let (_, other) = crate::crypt::test_pair();
        let err = extract(&dest, &tmp.path().join("other"), Some(&other)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Encryption, "{err}");

        let out = tmp.path().join("out");
        extract(&dest, &out, Some(&identity)).unwrap();
        assert_eq!(
            std::fs::read(out.join("full_backup/shop/c.bson")).unwrap(),
            content
        );
    }

    #[test]
    fn refuses_parent_and_absolute_entries() {
        assert!(check_inside(Path::new("a/../b")).is_ok());
        assert!(check_inside(Path::new("a/../../b")).is_err());
        assert!(check_inside(Path::new("/etc/passwd")).is_err());
    }
}
