//! The manifest of a cycle, `<cycle>/manifest.json` in the bucket (and of a full-mode backup,
//! `<name>.manifest.json`): what each stored archive must be (size, CRC64), what it covers (oplog
//! range, documents per collection at dump time) and which tool wrote it. It is rewritten after each
//! verified upload, so it only ever names archives that are safely in the bucket. `verify` checks
//! the bucket against it; `list` reads time ranges from it. It holds no setting and no secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::layout::{self, Key};
pub use crate::position::Position;
use crate::storage::Storage;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub tool: String,
    pub version: String,
    /// The cycle or full backup's name.
    pub name: String,
    /// The database backed up; empty = every database.
    pub database: String,
    pub updated_at: String,
    pub archives: Vec<ArchiveEntry>,
    /// Ranges a run captured and found to hold no entry of the database: they join the increments
    /// around them into one chain (no archive is stored for them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub empty_ranges: Vec<OplogRange>,
}

/// An oplog range `(from, to]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OplogRange {
    pub from: Position,
    pub to: Position,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveKind {
    Full,
    Increment,
}

/// One archive in the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveEntry {
    pub key: String,
    pub kind: ArchiveKind,
    pub size: u64,
    /// CRC-64/ECMA as a decimal string (OSS's own notation; too large for a JSON number).
    pub crc64: String,
    pub stored_at: String,
    /// How it is compressed (absent: gzip, as every archive before zstd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<crate::codec::Kind>,
    /// Full dump of a cycle: the oplog position it was started at (replay starts after it), and
    /// the newest one once it had finished (the earliest point the cycle restores to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oplog_start: Option<Position>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oplog_end: Option<Position>,
    /// Increment: the range (from, to] it captured, and its first and last entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oplog_from: Option<Position>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oplog_to: Option<Position>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
    /// Full dump: documents and content hash per `db.collection` (see `CollectionDigest`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub collections: BTreeMap<String, CollectionSummary>,
    /// With `encrypt_recipients`: `collections` sealed with age (base64), so that the bucket
    /// shows no collection name; opened in memory by a restore or `verify --deep` that has the
    /// identity, and never written back in the clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_collections: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionSummary {
    pub documents: u64,
    pub hash: String,
}

/// The content hash of a collection, independent of document order: the sum modulo 2^128 of the
/// MD5 of each document's BSON bytes. Order-independent so that it is computed while the dump
/// streams (natural order, no sort, no second pass) and compared with a restored copy read in any
/// order; byte-exact, so a changed field, value or field order changes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectionDigest {
    pub documents: u64,
    sum: u128,
}

impl CollectionDigest {
    pub fn add(&mut self, bson: &[u8]) {
        use md5::{Digest, Md5};
        let digest: [u8; 16] = Md5::digest(bson).into();
        self.sum = self.sum.wrapping_add(u128::from_be_bytes(digest));
        self.documents += 1;
    }

    pub fn hex(&self) -> String {
        format!("{:032x}", self.sum)
    }

    pub fn summary(&self) -> CollectionSummary {
        CollectionSummary {
            documents: self.documents,
            hash: self.hex(),
        }
    }
}

impl ArchiveEntry {
    /// An entry with nothing known yet but its kind.
    pub fn new(kind: ArchiveKind) -> Self {
        ArchiveEntry {
            key: String::new(),
            kind,
            size: 0,
            crc64: String::new(),
            stored_at: String::new(),
            codec: None,
            oplog_start: None,
            oplog_end: None,
            oplog_from: None,
            oplog_to: None,
            entries: None,
            collections: BTreeMap::new(),
            sealed_collections: None,
        }
    }

    /// Moves `collections` into `sealed_collections`, sealed for `recipients`.
    pub fn seal_collections(&mut self, recipients: &crate::crypt::Recipients) -> Result<()> {
        use base64::Engine;
        let plain = serde_json::to_vec(&self.collections).unwrap_or_default();
        let sealed = recipients
            .seal_bytes(&plain)
            .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot seal: {e}")))?;
        self.sealed_collections = Some(base64::engine::general_purpose::STANDARD.encode(sealed));
        self.collections.clear();
        Ok(())
    }

    /// Whether part of this entry is sealed.
    pub fn is_sealed(&self) -> bool {
        self.sealed_collections.is_some()
    }

    /// The recorded CRC64, when one was (not for objects adopted from a bucket without CRC64).
    pub fn crc64_value(&self) -> Option<u64> {
        self.crc64.parse().ok()
    }
}

impl Manifest {
    pub fn new(name: &str, database: &str) -> Self {
        Manifest {
            format: 1,
            tool: "mongo-oss-backup".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            name: name.into(),
            database: database.into(),
            updated_at: now(),
            archives: Vec::new(),
            empty_ranges: Vec::new(),
        }
    }

    /// Adds an archive, replacing an entry of the same key (an archive stored again).
    pub fn record(&mut self, entry: ArchiveEntry) {
        self.archives.retain(|a| a.key != entry.key);
        self.archives.push(entry);
        self.archives.sort_by(|a, b| {
            (a.kind != ArchiveKind::Full, &a.key).cmp(&(b.kind != ArchiveKind::Full, &b.key))
        });
        self.version = env!("CARGO_PKG_VERSION").into();
        self.updated_at = now();
    }

    /// Records a range captured and found empty, merged with one it continues.
    pub fn record_empty_range(&mut self, from: Position, to: Position) {
        match self.empty_ranges.iter_mut().find(|r| r.to == from) {
            Some(r) => r.to = to,
            None => self.empty_ranges.push(OplogRange { from, to }),
        }
        self.updated_at = now();
    }

    pub fn entry(&self, key: &str) -> Option<&ArchiveEntry> {
        self.archives.iter().find(|a| a.key == key)
    }

    pub fn full(&self) -> Option<&ArchiveEntry> {
        self.archives.iter().find(|a| a.kind == ArchiveKind::Full)
    }

    /// The manifest as stored: what was sealed stays sealed, even after `open_sealed`.
    pub fn to_json(&self) -> String {
        let mut stored = self.clone();
        for a in stored.archives.iter_mut().filter(|a| a.is_sealed()) {
            a.collections.clear();
        }
        serde_json::to_string_pretty(&stored).unwrap_or_default() + "\n"
    }

    /// Whether any entry is sealed (the backup was encrypted).
    pub fn is_sealed(&self) -> bool {
        self.archives.iter().any(ArchiveEntry::is_sealed)
    }

    /// Opens the sealed sections with `identity`, in memory. Without an identity the sealed
    /// entries stay as they are (their collections unknown); a wrong one is an error.
    pub fn open_sealed(&mut self, identity: Option<&crate::crypt::Identity>) -> Result<()> {
        use base64::Engine;
        let Some(identity) = identity else {
            return Ok(());
        };
        for a in self.archives.iter_mut() {
            let Some(sealed) = &a.sealed_collections else {
                continue;
            };
            let what = format!("the manifest entry of {}", a.key);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(sealed)
                .map_err(|e| Error::new(ErrorKind::Integrity, format!("{what}: {e}")))?;
            let plain = identity.open_bytes(&bytes, &what)?;
            a.collections = serde_json::from_slice(&plain)
                .map_err(|e| Error::new(ErrorKind::Integrity, format!("{what}: {e}")))?;
        }
        Ok(())
    }

    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::new(
                ErrorKind::Integrity,
                format!("{origin} is not a valid manifest: {e}"),
            )
        })
    }

    /// Reads a local copy; `None` when there is none.
    pub fn read_local(path: &Path) -> Result<Option<Self>> {
        match crate::state::read_bytes(path)? {
            Some(bytes) => Self::parse(&bytes, &path.display().to_string()).map(Some),
            None => Ok(None),
        }
    }
}

/// Where a manifest lives: its local copy, its key, and what it describes.
#[derive(Debug, Clone)]
pub struct Place {
    pub local: PathBuf,
    pub key: String,
    /// The cycle or full backup's name.
    pub name: String,
    pub database: String,
    /// A cycle's manifest (not a full-mode backup's).
    pub cycle: bool,
}

impl Place {
    /// `<cycle>/manifest.json`, kept locally in the cycle's folder.
    pub fn of_cycle(cycle_dir: &Path, cycle: &str, database: &str) -> Self {
        Place {
            local: cycle_dir.join(layout::MANIFEST_FILE),
            key: layout::cycle_manifest_key(cycle),
            name: cycle.into(),
            database: database.into(),
            cycle: true,
        }
    }

    /// `<name>.manifest.json` of a full-mode backup, kept locally in the root beside its archive.
    pub fn of_full_backup(root: &Path, name: &str, database: &str) -> Self {
        let key = layout::full_manifest_key(name);
        Place {
            local: root.join(&key),
            key,
            name: name.into(),
            database: database.into(),
            cycle: false,
        }
    }
}

/// Reads the manifest at `place` (its local copy, else the bucket's), applies `change`, writes it
/// locally and stores it, verified. A damaged copy does not stop backups: it is started again with a
/// warning, and `verify` then notes the archives it lost. A cycle's manifest without its full dump
/// (a cycle the old scripts began) first adopts what the bucket holds; `start_hint` is the position
/// the cycle's dump was taken at, known when no increment was stored yet.
pub async fn update(
    storage: &dyn Storage,
    place: &Place,
    start_hint: Option<Position>,
    change: impl FnOnce(&mut Manifest),
) -> Result<()> {
    let existing = match Manifest::read_local(&place.local) {
        Ok(Some(m)) => Ok(Some(m)),
        Ok(None) => match storage.read(&place.key).await? {
            Some(bytes) => Manifest::parse(&bytes, &place.key).map(Some),
            None => Ok(None),
        },
        Err(e) => Err(e),
    };
    let mut manifest = match existing {
        Ok(Some(m)) => m,
        Ok(None) => Manifest::new(&place.name, &place.database),
        Err(e) => {
            log::warn!("{e}; starting the manifest again");
            Manifest::new(&place.name, &place.database)
        }
    };
    change(&mut manifest);
    if place.cycle && manifest.full().is_none() {
        adopt(storage, &mut manifest, start_hint).await?;
    }
    // The local copy takes the new version only once the bucket has it: a local manifest always
    // means "stored there" (a backup run checks that the bucket still has it).
    let staged = place.local.with_extension("json.staged");
    crate::state::write_atomic(&staged, manifest.to_json().as_bytes())?;
    crate::hooks::crash_point("manifest_staged");
    storage.put_file(&staged, &place.key, &|_| {}).await?;
    std::fs::rename(&staged, &place.local).map_err(|e| Error::io("rename", &staged, e))?;
    Ok(())
}

/// Adds a verified archive to the manifest at `place` and stores the manifest again, verified. A
/// manifest therefore never names an archive that is not stored.
pub async fn record_stored(
    storage: &dyn Storage,
    place: &Place,
    mut entry: ArchiveEntry,
    done: &crate::storage::VerifiedUpload,
) -> Result<()> {
    entry.key = done.key.clone();
    entry.size = done.size;
    entry.crc64 = done.crc64.to_string();
    entry.stored_at = now();
    let start_hint = entry.oplog_from;
    update(storage, place, start_hint, |m| m.record(entry)).await
}

/// Records the archives of a cycle the manifest does not know (stored by the old scripts before
/// the switch-over), with the size and CRC64 the bucket reports, so that `verify` checks them and a
/// restore compares them. Their ranges are unknown (restores check them by their entries); the
/// dump's position is known only when no increment was stored before (`start_hint`).
async fn adopt(
    storage: &dyn Storage,
    manifest: &mut Manifest,
    start_hint: Option<Position>,
) -> Result<()> {
    let objects = storage
        .list(&layout::cycle_prefix_of(&manifest.name))
        .await?;
    let unrecorded_increments = objects
        .iter()
        .filter(|o| matches!(Key::parse(&o.key, ""), Key::Increment { .. }))
        .filter(|o| manifest.entry(&o.key).is_none())
        .count();
    for o in &objects {
        let kind = match Key::parse(&o.key, "") {
            Key::CycleFull { .. } => ArchiveKind::Full,
            Key::Increment { .. } => ArchiveKind::Increment,
            _ => continue,
        };
        if manifest.entry(&o.key).is_some() {
            continue;
        }
        let Some(info) = storage.head(&o.key).await? else {
            continue;
        };
        let mut entry = ArchiveEntry::new(kind);
        entry.key = o.key.clone();
        entry.size = info.size;
        entry.crc64 = info.crc64.map(|c| c.to_string()).unwrap_or_default();
        entry.stored_at = info
            .last_modified
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(|t| {
                t.with_timezone(&chrono::Local)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
            })
            .unwrap_or_else(now);
        if kind == ArchiveKind::Full && unrecorded_increments == 0 {
            entry.oplog_start = start_hint;
        }
        log::info!(
            "manifest of {}: recorded {} ({} bytes), stored before the switch-over",
            manifest.name,
            o.key,
            info.size
        );
        manifest.record(entry);
    }
    Ok(())
}

pub fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The collection list of an encrypted backup is stored sealed, opens only with the identity,
    /// and is never written back in the clear once opened.
    #[test]
    fn sealed_collections_stay_sealed_when_stored() {
        let (recipients, identity) = crate::crypt::test_pair();
        let mut entry = ArchiveEntry::new(ArchiveKind::Full);
        entry.key = "c/full_backup.tar.gz.age".into();
        let mut digest = CollectionDigest::default();
        digest.add(b"\x05\0\0\0\0");
        entry
            .collections
            .insert("shop.secret_customers".into(), digest.summary());
        entry.seal_collections(&recipients).unwrap();
        let mut m = Manifest::new("c", "");
        m.record(entry);
        let stored = m.to_json();
        assert!(!stored.contains("secret_customers"), "{stored}");
        let mut read = Manifest::parse(stored.as_bytes(), "m").unwrap();
        read.open_sealed(None).unwrap();
        assert!(read.full().unwrap().collections.is_empty());
        read.open_sealed(Some(&identity)).unwrap();
        assert_eq!(
            read.full().unwrap().collections["shop.secret_customers"].documents,
            1
        );
        assert!(!read.to_json().contains("secret_customers"));
        let (_, other) = crate::crypt::test_pair();
        let mut again = Manifest::parse(stored.as_bytes(), "m").unwrap();
        let err = again.open_sealed(Some(&other)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Encryption);
    }

    #[test]
    fn digest_ignores_order_and_sees_bytes() {
        let (a, b) = (b"\x05\0\0\0\0".as_slice(), b"\x06\0\0\0\x08\0".as_slice());
        let mut x = CollectionDigest::default();
        x.add(a);
        x.add(b);
        let mut y = CollectionDigest::default();
        y.add(b);
        y.add(a);
        assert_eq!(x, y);
        let mut z = CollectionDigest::default();
        z.add(a);
        z.add(b"\x06\0\0\0\x09\0");
        assert_ne!(x.hex(), z.hex());
        assert_eq!(x.documents, 2);
    }

    #[test]
    fn record_replaces_and_keeps_full_first() {
        let entry = |key: &str, kind, size| ArchiveEntry {
            key: key.into(),
            size,
            crc64: "1".into(),
            stored_at: now(),
            ..ArchiveEntry::new(kind)
        };
        let mut m = Manifest::new("c", "db");
        m.record(entry(
            "c/inc_backup/oplog_2.tar.gz",
            ArchiveKind::Increment,
            1,
        ));
        m.record(entry("c/full_backup.tar.gz", ArchiveKind::Full, 2));
        m.record(entry(
            "c/inc_backup/oplog_2.tar.gz",
            ArchiveKind::Increment,
            3,
        ));
        assert_eq!(m.archives.len(), 2);
        assert_eq!(m.archives[0].kind, ArchiveKind::Full);
        assert_eq!(m.archives[1].size, 3);
        let back = Manifest::parse(m.to_json().as_bytes(), "x").unwrap();
        assert_eq!(back, m);
    }
}
