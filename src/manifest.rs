//! The manifest of a cycle, `<cycle>/manifest.json` in the bucket (and of a full-mode backup,
//! `<name>.manifest.json`): what each stored archive must be (size, CRC64), what it covers (oplog
//! range, documents per collection at dump time) and which tool wrote it. It is rewritten after each
//! verified upload, so it only ever names archives that are safely in the bucket. `verify` checks
//! the bucket against it; `list` reads time ranges from it. It holds no setting and no secret.

use std::collections::BTreeMap;
use std::path::Path;

use mongodb::bson::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

pub const FILE_NAME: &str = "manifest.json";

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
    /// Full dump of a cycle: the oplog position it was started at (replay starts after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oplog_start: Option<Position>,
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionSummary {
    pub documents: u64,
    pub hash: String,
}

/// An oplog timestamp as `{"t": seconds, "i": increment}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub t: u32,
    pub i: u32,
}

impl From<Timestamp> for Position {
    fn from(ts: Timestamp) -> Self {
        Position {
            t: ts.time,
            i: ts.increment,
        }
    }
}

impl From<Position> for Timestamp {
    fn from(p: Position) -> Self {
        Timestamp {
            time: p.t,
            increment: p.i,
        }
    }
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

    pub fn full(&self) -> Option<&ArchiveEntry> {
        self.archives.iter().find(|a| a.kind == ArchiveKind::Full)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
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
        match std::fs::read(path) {
            Ok(bytes) => Self::parse(&bytes, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }
}

/// Serializes an optional oplog timestamp as `{"t": .., "i": ..}` (or null).
pub fn serialize_ts<S: serde::Serializer>(
    ts: &Option<Timestamp>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    ts.map(Position::from).serialize(s)
}

pub fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            kind,
            size,
            crc64: "1".into(),
            stored_at: now(),
            oplog_start: None,
            oplog_from: None,
            oplog_to: None,
            entries: None,
            collections: BTreeMap::new(),
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
