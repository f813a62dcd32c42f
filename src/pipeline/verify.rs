//! `verify`: is a backup in the bucket what its manifest says? Every archive the manifest records
//! must be present with the recorded size and CRC64, checked by HEAD without downloading (OSS
//! reports its CRC64; a folder's is computed from the file; S3 reports none, so size only there).
//! `--deep` also downloads the dump, restores it into a scratch database on the configured server,
//! and compares each collection's document count and content hash with those recorded at dump
//! time, then reads every increment through and compares its entry count. Old cycles without a
//! manifest are checked by what the bucket holds: archives present and not empty.

use std::path::{Path, PathBuf};

use mongodb::bson::{doc, RawDocumentBuf};
use serde::Serialize;

use super::catalog::{self, Catalog};
use super::{download, extract_beside, mongo_target, open_source_storage};
use crate::config::Settings;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{ArchiveKind, CollectionDigest, Manifest};
use crate::mongo::restore::{restore_database, BsonReader, RestoreOptions};
use crate::mongo::{connect, Mongo};
use crate::storage::Storage;

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub name: String,
    pub has_manifest: bool,
    pub archives: Vec<ArchiveCheck>,
    /// Archives in the bucket the manifest does not name (stored by the old scripts, or by a run
    /// that died before the manifest was rewritten): reported, not an error.
    pub unrecorded: Vec<String>,
    pub deep: Option<DeepCheck>,
    pub ok: bool,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArchiveCheck {
    pub key: String,
    pub expected_size: Option<u64>,
    pub expected_crc64: Option<String>,
    pub size: Option<u64>,
    pub crc64: Option<String>,
    pub ok: bool,
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeepCheck {
    pub scratch_database: String,
    pub collections: Vec<CollectionCheck>,
    pub increments: Vec<IncrementCheck>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CollectionCheck {
    pub namespace: String,
    pub expected_documents: Option<u64>,
    pub expected_hash: Option<String>,
    pub documents: u64,
    pub hash: String,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct IncrementCheck {
    pub key: String,
    pub expected_entries: Option<u64>,
    pub entries: u64,
    pub ok: bool,
}

pub struct VerifyRequest {
    /// A cycle or full-backup name; `None` = the newest cycle (or full backup when there is none).
    pub name: Option<String>,
    pub deep: bool,
    /// Scratch space for `--deep` [default: `<db_backup_root_path>/verify`].
    pub local_dir: Option<PathBuf>,
}

pub async fn run(settings: &Settings, req: &VerifyRequest) -> Result<VerifyReport> {
    let storage = open_source_storage(settings, "verify").await?;
    let catalog = catalog::read(storage.as_ref(), &settings.cycle_prefix, &|_| false).await?;
    let mut target = pick(&catalog, req.name.as_deref(), &storage.describe())?;
    target.manifest = catalog::read_manifest(storage.as_ref(), &target.manifest_key).await?;
    let mut report = VerifyReport {
        name: target.name.clone(),
        has_manifest: target.manifest.is_some(),
        archives: Vec::new(),
        unrecorded: Vec::new(),
        deep: None,
        ok: true,
        problems: Vec::new(),
    };
    match &target.manifest {
        Some(manifest) => {
            for entry in &manifest.archives {
                report
                    .archives
                    .push(check_archive(storage.as_ref(), entry).await?);
            }
            report.unrecorded = target
                .keys
                .iter()
                .filter(|k| !manifest.archives.iter().any(|a| &a.key == *k))
                .cloned()
                .collect();
        }
        None => {
            for key in &target.keys {
                report
                    .archives
                    .push(check_present(storage.as_ref(), key).await?);
            }
            if target.full_key.is_none() {
                report
                    .problems
                    .push(format!("{} has no full dump archive", target.name));
            }
        }
    }
    for a in report.archives.iter().filter(|a| !a.ok) {
        report.problems.push(format!(
            "{}: {}",
            a.key,
            a.problem.clone().unwrap_or_default()
        ));
    }
    if req.deep && report.problems.is_empty() {
        let dir = req
            .local_dir
            .clone()
            .unwrap_or_else(|| settings.db_backup_root_path.join("verify"));
        let deep = deep_check(settings, storage.as_ref(), &target, &dir).await;
        let _ = std::fs::remove_dir_all(&dir);
        let deep = deep?;
        for c in deep.collections.iter().filter(|c| !c.ok) {
            report.problems.push(format!(
                "{}: restored {} documents (hash {}), the manifest recorded {} (hash {})",
                c.namespace,
                c.documents,
                c.hash,
                c.expected_documents.unwrap_or_default(),
                c.expected_hash.clone().unwrap_or_default()
            ));
        }
        for i in deep.increments.iter().filter(|i| !i.ok) {
            report.problems.push(format!(
                "{}: {} oplog entries, the manifest recorded {}",
                i.key,
                i.entries,
                i.expected_entries.unwrap_or_default()
            ));
        }
        report.deep = Some(deep);
    }
    report.ok = report.problems.is_empty();
    Ok(report)
}

/// The backup chosen for verification, whatever its mode.
struct Target {
    name: String,
    manifest_key: String,
    manifest: Option<Manifest>,
    /// Archive keys present in the bucket.
    keys: Vec<String>,
    full_key: Option<String>,
    increment_keys: Vec<String>,
}

fn pick(catalog: &Catalog, name: Option<&str>, bucket: &str) -> Result<Target> {
    let cycle = match name {
        Some(n) => catalog.cycles.iter().find(|c| c.name == n),
        None => catalog.cycles.last(),
    };
    if let Some(c) = cycle {
        let increment_keys: Vec<String> = c.increments.iter().map(|i| i.key.clone()).collect();
        let full_key = c.full.as_ref().map(|f| f.key.clone());
        return Ok(Target {
            name: c.name.clone(),
            manifest_key: catalog::cycle_manifest_key(&c.name),
            manifest: None,
            keys: full_key
                .iter()
                .chain(increment_keys.iter())
                .cloned()
                .collect(),
            full_key,
            increment_keys,
        });
    }
    let full = match name {
        Some(n) => catalog.full_backups.iter().find(|f| f.name == n),
        None if catalog.cycles.is_empty() => catalog.full_backups.last(),
        None => None,
    };
    match full {
        Some(f) => Ok(Target {
            name: f.name.clone(),
            manifest_key: catalog::full_manifest_key(&f.name),
            manifest: None,
            keys: vec![f.archive.key.clone()],
            full_key: Some(f.archive.key.clone()),
            increment_keys: Vec::new(),
        }),
        None => Err(Error::new(
            ErrorKind::StorageNotFound,
            match name {
                Some(n) => format!("no cycle or full backup named {n} in {bucket}"),
                None => format!("no backup in {bucket}"),
            },
        )),
    }
}

async fn check_archive(
    storage: &dyn Storage,
    entry: &crate::manifest::ArchiveEntry,
) -> Result<ArchiveCheck> {
    let found = storage.head(&entry.key).await?;
    let mut check = ArchiveCheck {
        key: entry.key.clone(),
        expected_size: Some(entry.size),
        expected_crc64: Some(entry.crc64.clone()),
        size: found.as_ref().map(|f| f.size),
        crc64: found.as_ref().and_then(|f| f.crc64).map(|c| c.to_string()),
        ok: false,
        problem: None,
    };
    check.problem = match &found {
        None => Some("missing from the bucket".into()),
        Some(f) if f.size != entry.size => Some(format!(
            "size {} in the bucket, {} in the manifest (truncated or replaced)",
            f.size, entry.size
        )),
        Some(f) => match f.crc64 {
            Some(c) if c.to_string() != entry.crc64 => Some(format!(
                "CRC64 {c} in the bucket, {} in the manifest (content replaced)",
                entry.crc64
            )),
            _ => None,
        },
    };
    check.ok = check.problem.is_none();
    Ok(check)
}

async fn check_present(storage: &dyn Storage, key: &str) -> Result<ArchiveCheck> {
    let found = storage.head(key).await?;
    let problem = match &found {
        None => Some("missing from the bucket".to_string()),
        Some(f) if f.size == 0 => Some("empty object".to_string()),
        Some(_) => None,
    };
    Ok(ArchiveCheck {
        key: key.to_string(),
        expected_size: None,
        expected_crc64: None,
        size: found.as_ref().map(|f| f.size),
        crc64: found.as_ref().and_then(|f| f.crc64).map(|c| c.to_string()),
        ok: problem.is_none(),
        problem,
    })
}

/// Downloads and restores the dump into scratch databases, hashes what was restored, drops them.
async fn deep_check(
    settings: &Settings,
    storage: &dyn Storage,
    target: &Target,
    dir: &Path,
) -> Result<DeepCheck> {
    let full_key = target.full_key.clone().ok_or_else(|| {
        Error::new(
            ErrorKind::StorageNotFound,
            "no full dump archive to restore",
        )
    })?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io("remove", dir, e))?;
    }
    crate::mongo::dump::create_private_dir(dir)?;
    let local = dir.join(full_key.rsplit('/').next().unwrap_or("full.tar.gz"));
    download(storage, &full_key, &local, None).await?;
    extract_beside(local.clone()).await?;
    let dump_root = dir.join(
        local
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .trim_end_matches(".tar.gz"),
    );
    let mongo = connect(&mongo_target(settings)).await?;
    let scratch = format!("verify_{}", std::process::id());
    let mut collections = Vec::new();
    for db in super::database_dirs(&dump_root)? {
        let scratch_db = scratch_name(&scratch, &db);
        let _ = mongo.client.database(&scratch_db).drop().await;
        let outcome = check_database(&mongo, &dump_root.join(&db), &db, &scratch_db, target).await;
        let _ = mongo.client.database(&scratch_db).drop().await;
        collections.extend(outcome?);
    }
    let mut increments = Vec::new();
    for key in &target.increment_keys {
        let local = dir.join(key.replace('/', "_"));
        download(storage, key, &local, None).await?;
        let extracted = dir.join("inc");
        crate::archive::extract(&local, &extracted)?;
        let entries = count_entries(&extracted)?;
        let _ = std::fs::remove_dir_all(&extracted);
        let _ = std::fs::remove_file(&local);
        let expected = target.manifest.as_ref().and_then(|m| {
            m.archives
                .iter()
                .find(|a| &a.key == key)
                .and_then(|a| a.entries)
        });
        increments.push(IncrementCheck {
            key: key.clone(),
            expected_entries: expected,
            entries,
            ok: expected.is_none_or(|e| e == entries),
        });
    }
    Ok(DeepCheck {
        scratch_database: scratch,
        collections,
        increments,
    })
}

async fn check_database(
    mongo: &Mongo,
    dir: &Path,
    db: &str,
    scratch_db: &str,
    target: &Target,
) -> Result<Vec<CollectionCheck>> {
    let restored = restore_database(mongo, dir, scratch_db, &RestoreOptions::default()).await?;
    let recorded = target.manifest.as_ref().and_then(|m| {
        m.archives
            .iter()
            .find(|a| a.kind == ArchiveKind::Full)
            .map(|a| a.collections.clone())
    });
    let views = view_names(mongo, scratch_db).await?;
    let mut checks = Vec::new();
    for c in restored
        .collections
        .iter()
        .filter(|c| !views.contains(&c.collection))
    {
        let digest = hash_collection(mongo, scratch_db, &c.collection).await?;
        let namespace = format!("{db}.{}", c.collection);
        let expected = recorded.as_ref().and_then(|r| r.get(&namespace));
        checks.push(CollectionCheck {
            ok: expected.is_none_or(|e| e.documents == digest.documents && e.hash == digest.hex()),
            expected_documents: expected.map(|e| e.documents),
            expected_hash: expected.map(|e| e.hash.clone()),
            documents: digest.documents,
            hash: digest.hex(),
            namespace,
        });
    }
    // A collection recorded at dump time that the restore did not bring back.
    if let Some(recorded) = &recorded {
        for (ns, summary) in recorded {
            if let Some(coll) = ns.strip_prefix(&format!("{db}.")) {
                if !restored.collections.iter().any(|c| c.collection == coll) {
                    checks.push(CollectionCheck {
                        namespace: ns.clone(),
                        expected_documents: Some(summary.documents),
                        expected_hash: Some(summary.hash.clone()),
                        documents: 0,
                        hash: CollectionDigest::default().hex(),
                        ok: false,
                    });
                }
            }
        }
    }
    Ok(checks)
}

/// The views of a database: restored as views, they hold no documents of their own.
async fn view_names(mongo: &Mongo, db: &str) -> Result<Vec<String>> {
    use futures::TryStreamExt;
    let doing = format!("list the views of {db}");
    let specs: Vec<mongodb::bson::Document> = mongo
        .client
        .database(db)
        .run_cursor_command(doc! {"listCollections": 1, "filter": {"type": "view"}})
        .await
        .map_err(|e| mongo.error(e, &doing))?
        .try_collect()
        .await
        .map_err(|e| mongo.error(e, &doing))?;
    Ok(specs
        .iter()
        .filter_map(|s| s.get_str("name").ok().map(str::to_string))
        .collect())
}

/// Count and hash of a collection's documents as the server returns them (the same
/// order-independent hash the dump recorded).
async fn hash_collection(mongo: &Mongo, db: &str, name: &str) -> Result<CollectionDigest> {
    let doing = format!("read {db}.{name}");
    let mut cursor = mongo
        .client
        .database(db)
        .collection::<RawDocumentBuf>(name)
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .await
        .map_err(|e| mongo.error(e, &doing))?;
    let mut digest = CollectionDigest::default();
    while cursor.advance().await.map_err(|e| mongo.error(e, &doing))? {
        digest.add(cursor.current().as_bytes());
    }
    Ok(digest)
}

/// Entries of every `oplog.bson` under `dir`.
fn count_entries(dir: &Path) -> Result<u64> {
    let mut n = 0;
    for path in walk(dir)?.into_iter().filter(|p| p.ends_with("oplog.bson")) {
        let file = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        let mut reader = BsonReader::new(std::io::BufReader::new(file), &path);
        while reader.next_document()?.is_some() {
            n += 1;
        }
    }
    Ok(n)
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))? {
        let path = entry
            .map_err(|e| Error::io("read directory", dir, e))?
            .path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}

/// `verify_<pid>_<db>`, kept under MongoDB's 63-byte database name limit.
fn scratch_name(prefix: &str, db: &str) -> String {
    let mut name = format!("{prefix}_{db}");
    while name.len() > 63 {
        name.pop();
    }
    name
}
