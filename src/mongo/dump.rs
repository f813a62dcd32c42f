//! Dumping databases into mongodump's directory layout: `<dir>/<db>/<name>.bson` (the raw BSON
//! documents as the server sent them, concatenated, never decoded) and `<name>.metadata.json`.
//! Collections run in parallel (bounded); each is one streaming cursor, so memory stays bounded
//! whatever the data size. System collections are skipped as mongodump skips them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{doc, Bson, Document, RawDocumentBuf};

use super::connect::Mongo;
use super::metadata::Metadata;
use super::names;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::CollectionDigest;
use crate::progress::{Progress, Unit};

/// Databases never dumped when `db_name` is empty.
pub const SKIPPED_DATABASES: &[&str] = &["admin", "local", "config"];

#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// Collections dumped at once.
    pub parallel_collections: usize,
    /// A database without collections is an error unless this is set (incremental cycles accept it).
    pub allow_empty: bool,
    pub progress: Progress,
    /// Receives each file once it is complete and fsynced (a collection's `.metadata.json`, then
    /// its `.bson`), for an archive that grows while the dump runs. The `.bson` files are then
    /// spooled through zstd (`SPOOL_SUFFIX`): they wait on local disk only until archived, and a
    /// collection in flight takes a fraction of its size there.
    pub finished_files: Option<std::sync::mpsc::Sender<FinishedFile>>,
}

/// Added to a `.bson` file's name when it is spooled compressed.
pub const SPOOL_SUFFIX: &str = ".spool.zst";

/// A finished file of a dump in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedFile {
    pub path: PathBuf,
    /// For a spooled `.bson`: the size of its content (the spool is zstd of it).
    pub spooled_size: Option<u64>,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            parallel_collections: 4,
            allow_empty: false,
            progress: Progress::none(),
            finished_files: None,
        }
    }
}

/// What was dumped for one collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionDump {
    pub database: String,
    pub collection: String,
    pub documents: u64,
    pub bytes: u64,
    pub is_view: bool,
    /// Count and order-independent hash of the documents as dumped (recorded in the manifest).
    pub digest: CollectionDigest,
}

/// Dumps `db_name` (empty = every database but admin, local and config) into `out_dir/<db>/`.
pub async fn dump(
    mongo: &Mongo,
    db_name: &str,
    out_dir: &Path,
    opts: &DumpOptions,
) -> Result<Vec<CollectionDump>> {
    let databases = if db_name.is_empty() {
        let names = mongo
            .client
            .list_database_names()
            .await
            .map_err(|e| mongo.error(e, "list databases"))?;
        names
            .into_iter()
            .filter(|n| !SKIPPED_DATABASES.contains(&n.as_str()))
            .collect()
    } else {
        vec![db_name.to_string()]
    };
    let mut all = Vec::new();
    for db in databases {
        all.extend(dump_database(mongo, &db, &out_dir.join(&db), opts).await?);
    }
    Ok(all)
}

/// Dumps one database into `dir` (created 0700).
pub async fn dump_database(
    mongo: &Mongo,
    db: &str,
    dir: &Path,
    opts: &DumpOptions,
) -> Result<Vec<CollectionDump>> {
    let started = Instant::now();
    let specs = list_collections(mongo, db).await?;
    if specs.is_empty() && !opts.allow_empty {
        return Err(Error::new(
            ErrorKind::MongoNotFound,
            format!(
                "database \"{db}\" does not exist on {} (it has no collections): check db_name",
                mongo.target.describe()
            ),
        ));
    }
    crate::private::create_dir(dir)?;
    let results: Vec<CollectionDump> = futures::stream::iter(specs)
        .map(|spec| dump_collection(mongo, db, dir, spec, opts))
        .buffer_unordered(opts.parallel_collections.max(1))
        .try_collect()
        .await?;
    let docs: u64 = results.iter().map(|c| c.documents).sum();
    let bytes: u64 = results.iter().map(|c| c.bytes).sum();
    log::info!(
        "dumped database {db}: {}, {}, {} in {:.1}s",
        crate::logging::count(results.len() as u64, "collection"),
        crate::logging::count(docs, "document"),
        crate::logging::size(bytes),
        started.elapsed().as_secs_f64()
    );
    Ok(results)
}

/// listCollections of `db`, without what mongodump leaves out.
async fn list_collections(mongo: &Mongo, db: &str) -> Result<Vec<Document>> {
    let doing = format!("list the collections of {db}");
    let cursor = mongo
        .client
        .database(db)
        .run_cursor_command(doc! {"listCollections": 1})
        .await
        .map_err(|e| mongo.error(e, &doing))?;
    let specs: Vec<Document> = cursor
        .try_collect()
        .await
        .map_err(|e| mongo.error(e, &doing))?;
    Ok(specs
        .into_iter()
        .filter(|s| {
            s.get_str("name")
                .map(|n| !skip_collection(n))
                .unwrap_or(false)
        })
        .collect())
}

/// mongodump's rule: `system.*` except `system.js`, and `$` names (old index namespaces).
fn skip_collection(name: &str) -> bool {
    (name.starts_with("system.") && name != "system.js") || name.contains('$')
}

async fn dump_collection(
    mongo: &Mongo,
    db: &str,
    dir: &Path,
    spec: Document,
    opts: &DumpOptions,
) -> Result<CollectionDump> {
    let name = spec.get_str("name").unwrap_or_default().to_string();
    let kind = spec.get_str("type").unwrap_or("collection").to_string();
    let is_view = kind == "view";
    let stem = names::file_stem(&name);
    let started = Instant::now();
    let mut metadata = Metadata {
        options: spec.get_document("options").cloned().unwrap_or_default(),
        indexes: Vec::new(),
        uuid: spec
            .get_document("info")
            .ok()
            .and_then(|i| match i.get("uuid") {
                Some(Bson::Binary(b)) => Some(b.bytes.iter().map(|x| format!("{x:02x}")).collect()),
                _ => None,
            }),
        collection_name: Some(name.clone()),
        kind: Some(kind),
    };
    let (mut digest, mut bytes) = (CollectionDigest::default(), 0u64);
    let spool = opts.finished_files.is_some();
    let bson_path = (!is_view).then(|| match spool {
        true => dir.join(format!("{stem}.bson{SPOOL_SUFFIX}")),
        false => dir.join(format!("{stem}.bson")),
    });
    if let Some(path) = &bson_path {
        (digest, bytes) = dump_documents(mongo, db, &name, path, spool, &opts.progress).await?;
        metadata.indexes = list_indexes(mongo, db, &name).await?;
    }
    crate::hooks::crash_point("during_dump");
    let meta_path = dir.join(format!("{stem}.metadata.json"));
    let mut f = crate::private::create_file(&meta_path)?;
    f.write_all(metadata.to_json().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io("write", &meta_path, e))?;
    if let Some(to) = &opts.finished_files {
        // A receiver gone has failed on its own: its error is the one reported.
        let _ = to.send(FinishedFile {
            path: meta_path,
            spooled_size: None,
        });
        if let Some(path) = bson_path {
            let _ = to.send(FinishedFile {
                path,
                spooled_size: Some(bytes),
            });
        }
    }
    log::debug!(
        "dumped {db}.{name}: {} documents, {bytes} bytes in {:.2}s",
        digest.documents,
        started.elapsed().as_secs_f64()
    );
    Ok(CollectionDump {
        database: db.to_string(),
        collection: name,
        documents: digest.documents,
        bytes,
        is_view,
        digest,
    })
}

/// Streams every document of `db.name` into `path`, raw (through zstd's fastest level when
/// `spool`). Returns (count and hash, bytes of the documents).
async fn dump_documents(
    mongo: &Mongo,
    db: &str,
    name: &str,
    path: &Path,
    spool: bool,
    progress: &Progress,
) -> Result<(CollectionDigest, u64)> {
    let doing = format!("dump {db}.{name}");
    let collection = mongo.client.database(db).collection::<RawDocumentBuf>(name);
    let mut cursor = collection
        .find(doc! {})
        .await
        .map_err(|e| mongo.error(e, &doing))?;
    let file = crate::private::create_file(path)?;
    let spooled = Spool::new(file, spool).map_err(|e| Error::io("write", path, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, spooled);
    let (mut digest, mut bytes) = (CollectionDigest::default(), 0u64);
    let mut task = progress.task(format!("dump {db}.{name}"), Unit::Documents, None);
    while cursor.advance().await.map_err(|e| mongo.error(e, &doing))? {
        let raw = cursor.current().as_bytes();
        out.write_all(raw)
            .map_err(|e| Error::io("write", path, e))?;
        digest.add(raw);
        bytes += raw.len() as u64;
        task.add(1, raw.len() as u64);
    }
    task.finish();
    let file = out
        .into_inner()
        .map_err(|e| Error::io("write", path, e.into_error()))?
        .finish()
        .map_err(|e| Error::io("write", path, e))?;
    file.sync_all().map_err(|e| Error::io("fsync", path, e))?;
    Ok((digest, bytes))
}

/// A `.bson` file written as is, or spooled through zstd level 1 (≈ 0.5 CPU-s per GB here, a
/// fraction of the archive's own compression).
enum Spool {
    Plain(std::fs::File),
    Zstd(zstd::stream::write::Encoder<'static, std::fs::File>),
}

impl Spool {
    fn new(file: std::fs::File, compressed: bool) -> std::io::Result<Self> {
        Ok(match compressed {
            false => Spool::Plain(file),
            true => Spool::Zstd(zstd::stream::write::Encoder::new(file, 1)?),
        })
    }

    fn finish(self) -> std::io::Result<std::fs::File> {
        match self {
            Spool::Plain(f) => Ok(f),
            Spool::Zstd(z) => z.finish(),
        }
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Spool::Plain(f) => f.write(buf),
            Spool::Zstd(z) => z.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Spool::Plain(f) => f.flush(),
            Spool::Zstd(z) => z.flush(),
        }
    }
}

async fn list_indexes(mongo: &Mongo, db: &str, name: &str) -> Result<Vec<Document>> {
    let doing = format!("list the indexes of {db}.{name}");
    let cursor = mongo
        .client
        .database(db)
        .run_cursor_command(doc! {"listIndexes": name})
        .await
        .map_err(|e| mongo.error(e, &doing))?;
    cursor
        .try_collect()
        .await
        .map_err(|e| mongo.error(e, &doing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_like_mongodump() {
        assert!(skip_collection("system.profile"));
        assert!(!skip_collection("system.js"));
        assert!(skip_collection("foo.$_id_"));
        assert!(!skip_collection("users"));
    }
}
