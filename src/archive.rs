//! Streaming tar archives in the layout of the old scripts (COMPAT §2.5, §3): archiving directory
//! `X` gives entries `X/...`, readable by GNU tar, compressed as `codec` says (gzip, or zstd).
//! Extraction accepts GNU tar's and Python tarfile's archives, either codec (by magic bytes), and
//! refuses entries that would land outside the target (absolute paths, `..`) and links of any kind
//! (a dump has none). Memory stays constant: data flows file → compressor → file.

use std::fs::File;
use std::io::Write;
use std::path::{Component, Path};

use crate::codec::Codec;
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
    let name = src.file_name().ok_or_else(|| {
        Error::new(
            ErrorKind::Archive,
            format!("cannot archive {}: it has no name", src.display()),
        )
    })?;
    let file = crate::private::create_file(dest)?;
    let output = Output::new(file, recipients).map_err(|e| Error::io("write archive", dest, e))?;
    let encoder = codec
        .encoder(output)
        .map_err(|e| Error::io("write archive", dest, e))?;
    let mut builder = tar::Builder::new(encoder);
    builder.follow_symlinks(false);
    let mut stats = ArchiveStats {
        files: 0,
        input_bytes: 0,
        archive_bytes: 0,
    };
    let mut task = progress.task(
        format!("archive {}", name.to_string_lossy()),
        Unit::Bytes,
        None,
    );
    append_tree(&mut builder, src, Path::new(name), &mut stats, &mut task)
        .map_err(|e| Error::io("archive", src, e))?;
    task.finish();
    let encoder = builder
        .into_inner()
        .map_err(|e| Error::io("write archive", dest, e))?;
    let file = encoder
        .finish()
        .and_then(Output::finish)
        .map_err(|e| Error::io("write archive", dest, e))?;
    file.sync_all().map_err(|e| Error::io("fsync", dest, e))?;
    stats.archive_bytes = file
        .metadata()
        .map_err(|e| Error::io("stat", dest, e))?
        .len();
    Ok(stats)
}

/// Appends `dir` as `name/` and everything below it, in sorted order (stable archives).
fn append_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: &Path,
    name: &Path,
    stats: &mut ArchiveStats,
    task: &mut Task,
) -> std::io::Result<()> {
    builder.append_dir(name, dir)?;
    let mut children: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let path = child.path();
        let entry_name = name.join(child.file_name());
        let kind = child.file_type()?;
        if kind.is_dir() {
            append_tree(builder, &path, &entry_name, stats, task)?;
        } else if kind.is_file() {
            let mut f = File::open(&path)?;
            stats.input_bytes += f.metadata()?.len();
            stats.files += 1;
            let mut header = tar::Header::new_gnu();
            header.set_metadata(&f.metadata()?);
            let mut counted = Counted {
                inner: &mut f,
                task,
            };
            builder.append_data(&mut header, &entry_name, &mut counted)?;
        } else {
            builder.append_path_with_name(&path, &entry_name)?;
        }
    }
    Ok(())
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
        check_inside(&path).map_err(|why| bad(format!("entry {}: {why}", path.display())))?;
        // A dump holds files and folders only. A link, even one pointing inside, could be written
        // through by a later entry or a later extraction into the same place.
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            return Err(bad(format!(
                "entry {} is a link (a backup holds files and folders only)",
                path.display()
            )));
        }
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
    Error::new(
        ErrorKind::Archive,
        format!(
            "{} is not a readable archive (tar.gz or tar.zst): {e}",
            archive.display()
        ),
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
