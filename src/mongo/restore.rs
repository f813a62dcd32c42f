//! Restoring one database directory in mongodump's layout into a (possibly differently named)
//! database with ordinary commands only, so a user with readWrite + dbAdmin on the target is enough:
//! create each collection with its options, insert the raw documents in large unordered batches with
//! several in flight, then build the indexes of the metadata. Documents and indexes that fail are
//! counted and reported with examples, never dropped silently.
//!
//! A collection that already holds documents (a restore run again over itself, without drop) gets
//! the dump's documents by `_id` instead: identical ones are counted, different ones replaced, so
//! that the replay that follows starts from the dump as it does the first time.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::time::Instant;

use mongodb::bson::{doc, Bson, Document, RawDocumentBuf};
use mongodb::error::ErrorKind as DriverKind;
use tokio::task::JoinSet;

pub use super::bson_file::BsonReader;
use super::connect::{first_line, Mongo};
pub use super::dump_dir::{database_dirs, dumped_namespaces};
use super::dump_dir::{scan, DumpedCollection};
pub(crate) use super::indexes::build_indexes;
use crate::error::{Error, ErrorKind, Result};

/// Collection options older servers wrote that a create command no longer accepts.
pub(crate) const LEGACY_OPTIONS: &[&str] = &["flags", "autoIndexId", "recordIdsReplicated"];
/// Examples of failed documents kept per collection.
const MAX_EXAMPLES: usize = 5;

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Drop each restored collection first (`is_drop_old_restore`).
    pub drop_existing: bool,
    /// Insert batches in flight per collection.
    pub insert_workers: usize,
    /// Bytes per insert batch.
    pub batch_bytes: usize,
    pub progress: crate::progress::Progress,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            drop_existing: false,
            insert_workers: 4,
            // Small enough that progress moves and memory stays low (workers × batch), large
            // enough that the per-command cost vanishes next to the server's per-document work.
            batch_bytes: 1 << 20,
            progress: crate::progress::Progress::none(),
        }
    }
}

/// The outcome for one collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CollectionRestore {
    pub collection: String,
    /// A selective restore's source namespace, when it differs from `<database>.<collection>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub inserted: u64,
    /// Documents already there with the same bytes (a restore over an earlier one).
    pub already_present: u64,
    /// Documents already there with other content, replaced by the dump's.
    pub replaced: u64,
    pub failed: u64,
    /// `_id` and reason of some failed documents.
    pub examples: Vec<String>,
    pub indexes_built: usize,
    /// `name: reason` of indexes that could not be built.
    pub index_failures: Vec<String>,
}

/// Whether some document or index of these restores could not be restored (exit code 3).
pub fn any_failed(databases: &[DatabaseRestore]) -> bool {
    databases
        .iter()
        .any(|d| d.failed_documents() > 0 || d.failed_indexes() > 0)
}

/// What one database restore did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DatabaseRestore {
    pub database: String,
    pub collections: Vec<CollectionRestore>,
    /// Files in the directory that are not part of a dump (reported, not restored).
    pub ignored_files: Vec<String>,
}

impl DatabaseRestore {
    /// The one line a restored database leaves in the log.
    pub fn log(&self, started: Instant) {
        log::info!(
            "restored database {}: {}, {} ({} failed), {} in {:.1}s",
            self.database,
            crate::logging::count(self.collections.len() as u64, "collection"),
            crate::logging::count(self.documents(), "document"),
            self.failed_documents(),
            crate::logging::count(self.failed_indexes() as u64, "index failure"),
            started.elapsed().as_secs_f64()
        );
    }

    pub fn documents(&self) -> u64 {
        self.collections.iter().map(|c| c.inserted).sum()
    }
    pub fn failed_documents(&self) -> u64 {
        self.collections.iter().map(|c| c.failed).sum()
    }
    pub fn failed_indexes(&self) -> usize {
        self.collections
            .iter()
            .map(|c| c.index_failures.len())
            .sum()
    }
}

/// Restores the dump directory `dir` (one database) into database `target`.
pub async fn restore_database(
    mongo: &Mongo,
    dir: &Path,
    target: &str,
    opts: &RestoreOptions,
) -> Result<DatabaseRestore> {
    let started = Instant::now();
    let (collections, ignored_files) = scan(dir)?;
    let mut report = DatabaseRestore {
        database: target.to_string(),
        collections: Vec::new(),
        ignored_files,
    };
    if opts.drop_existing {
        let keep: Vec<&str> = collections.iter().map(|c| c.name.as_str()).collect();
        drop_others(mongo, target, &keep).await?;
    }
    let (views, tables): (Vec<_>, Vec<_>) =
        collections.into_iter().partition(|c| c.metadata.is_view());
    for c in tables.iter().chain(views.iter()) {
        report
            .collections
            .push(restore_collection(mongo, target, &c.name, c, opts).await?);
    }
    report.log(started);
    Ok(report)
}

/// With drop, the target database ends up holding exactly the backup's collections: those it
/// does not have (created after the backup's point) go too.
pub(crate) async fn drop_others(mongo: &Mongo, db: &str, keep: &[&str]) -> Result<()> {
    for name in mongo.collection_names(db).await? {
        // A staged restore's temporaries are its own to drop (or rename over these).
        let staged = name.starts_with(super::staged::TEMP_PREFIX);
        if name.starts_with("system.") || staged || keep.contains(&name.as_str()) {
            continue;
        }
        log::info!("dropping {db}.{name}: the backup does not hold it (--drop)");
        mongo.drop_collection(db, &name).await?;
    }
    Ok(())
}

/// Restores dumped collection `c` into `db.name`.
pub(crate) async fn restore_collection(
    mongo: &Mongo,
    db: &str,
    name: &str,
    c: &DumpedCollection,
    opts: &RestoreOptions,
) -> Result<CollectionRestore> {
    let database = mongo.client.database(db);
    let mut result = CollectionRestore {
        collection: name.to_string(),
        ..Default::default()
    };
    if opts.drop_existing {
        mongo.drop_collection(db, name).await?;
    }
    create_collection(mongo, db, name, &c.metadata.options).await?;
    if let Some(bson) = &c.bson {
        let doing = format!("count the documents of {db}.{name}");
        let present = match c.metadata.is_view() {
            true => 0,
            false => database
                .collection::<Document>(name)
                .estimated_document_count()
                .await
                .map_err(|e| mongo.error(e, &doing))?,
        };
        let mut source = Documents::open(bson)?;
        match present {
            0 => {
                let shown = format!("{db}.{name}");
                insert_documents(mongo, db, name, &shown, &mut source, opts, &mut result).await?
            }
            _ => replace_documents(mongo, db, name, &mut source, opts, &mut result).await?,
        }
    }
    build_indexes(mongo, db, name, &c.metadata.indexes, &mut result).await?;
    Ok(result)
}

/// `create` with the dumped options; an existing collection is kept (documents go into it).
pub(crate) async fn create_collection(
    mongo: &Mongo,
    db: &str,
    name: &str,
    options: &Document,
) -> Result<()> {
    let mut command = doc! {"create": name};
    for (k, v) in options {
        if !LEGACY_OPTIONS.contains(&k.as_str()) {
            command.insert(k.clone(), v.clone());
        }
    }
    match mongo.client.database(db).run_command(command).await {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind.as_ref(), DriverKind::Command(c) if c.code == 48) => Ok(()),
        Err(e) => Err(mongo.error(e, &format!("create {db}.{name}"))),
    }
}

/// Where a collection's dumped documents come from.
pub enum Documents {
    /// A `.bson` file on disk.
    File(BsonReader<BufReader<File>>),
    /// Batches read from an archive as it downloads; an `Err` ends the stream, and so does the
    /// flag once set (the restore was called off).
    Stream(
        tokio::sync::mpsc::Receiver<Result<Vec<RawDocumentBuf>>>,
        Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    ),
    /// A collection on the server (a staged restore merged into a target that holds documents).
    Cursor(Box<mongodb::Cursor<RawDocumentBuf>>, String),
}

impl Documents {
    pub fn open(path: &Path) -> Result<Documents> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        Ok(Documents::File(BsonReader::new(
            BufReader::with_capacity(1 << 20, file),
            path,
        )))
    }

    /// Documents up to about `max_bytes` (at least one); empty at the end.
    async fn next_batch(&mut self, mongo: &Mongo, max_bytes: usize) -> Result<Vec<RawDocumentBuf>> {
        match self {
            Documents::File(reader) => reader.next_batch(max_bytes),
            Documents::Stream(_, Some(stop)) if stop.load(std::sync::atomic::Ordering::Relaxed) => {
                Err(Error::new(
                    ErrorKind::Internal,
                    "the restore was called off",
                ))
            }
            Documents::Stream(batches, _) => batches.recv().await.unwrap_or(Ok(Vec::new())),
            Documents::Cursor(cursor, ns) => {
                let (mut batch, mut size) = (Vec::new(), 0);
                while size < max_bytes {
                    let more = cursor
                        .advance()
                        .await
                        .map_err(|e| mongo.error(e, &format!("read {ns}")))?;
                    if !more {
                        break;
                    }
                    let d = cursor.current().to_raw_document_buf();
                    size += d.as_bytes().len();
                    batch.push(d);
                }
                Ok(batch)
            }
        }
    }
}

/// Inserts documents in batches, several in flight; `shown` names the collection on the progress
/// line (a staged restore writes under a temporary name).
pub(crate) async fn insert_documents(
    mongo: &Mongo,
    db: &str,
    name: &str,
    shown: &str,
    source: &mut Documents,
    opts: &RestoreOptions,
    result: &mut CollectionRestore,
) -> Result<()> {
    let collection = mongo.client.database(db).collection::<RawDocumentBuf>(name);
    let mut in_flight: JoinSet<(
        Vec<RawDocumentBuf>,
        std::result::Result<u64, mongodb::error::Error>,
    )> = JoinSet::new();
    let mut task = opts.progress.task(
        format!("restore {shown}"),
        crate::progress::Unit::Documents,
        None,
    );
    loop {
        let batch = match source.next_batch(mongo, opts.batch_bytes).await {
            Ok(batch) => batch,
            Err(e) => {
                // The inserts already sent land before the caller may drop the collection.
                while in_flight.join_next().await.is_some() {}
                return Err(e);
            }
        };
        let done = batch.is_empty();
        if !done {
            let coll = collection.clone();
            in_flight.spawn(async move {
                let outcome = coll
                    .insert_many(&batch)
                    .ordered(false)
                    .await
                    .map(|r| r.inserted_ids.len() as u64);
                (batch, outcome)
            });
        }
        while in_flight.len() >= opts.insert_workers.max(1) || (done && !in_flight.is_empty()) {
            let (batch, outcome) = in_flight
                .join_next()
                .await
                .expect("a task is in flight")
                .map_err(|e| Error::new(ErrorKind::Internal, format!("insert task failed: {e}")))?;
            let bytes: usize = batch.iter().map(|d| d.as_bytes().len()).sum();
            task.add(batch.len() as u64, bytes as u64);
            account(mongo, db, name, batch, outcome, result).await?;
        }
        if done {
            return Ok(());
        }
    }
}

/// Writes dumped documents by `_id` into a collection that already holds documents:
/// one `update` command (replacement, upsert, unordered) per batch. Documents a unique index
/// refused (another document still holds the value) are tried once more after the others.
pub(crate) async fn replace_documents(
    mongo: &Mongo,
    db: &str,
    name: &str,
    source: &mut Documents,
    opts: &RestoreOptions,
    result: &mut CollectionRestore,
) -> Result<()> {
    log::info!("{db}.{name} already holds documents: writing the dump's by _id");
    let mut task = opts.progress.task(
        format!("restore {db}.{name}"),
        crate::progress::Unit::Documents,
        None,
    );
    let mut refused: Vec<RawDocumentBuf> = Vec::new();
    loop {
        let batch = source.next_batch(mongo, opts.batch_bytes).await?;
        if batch.is_empty() {
            break;
        }
        let bytes: usize = batch.iter().map(|d| d.as_bytes().len()).sum();
        task.add(batch.len() as u64, bytes as u64);
        // A replacement refuses `$`-prefixed field names (legal since MongoDB 5.0).
        let (dollar, plain): (Vec<_>, Vec<_>) =
            batch.into_iter().partition(|d| has_dollar_field(d));
        refused.extend(replace_batch(mongo, db, name, plain, result, true).await?);
        swap_whole(mongo, db, name, dollar, result).await?;
    }
    if !refused.is_empty() {
        replace_batch(mongo, db, name, refused, result, false).await?;
    }
    Ok(())
}

/// Writes documents a replacement would refuse: each one identical to the stored document is left,
/// any other stored version is deleted, then the dump's is inserted.
async fn swap_whole(
    mongo: &Mongo,
    db: &str,
    name: &str,
    docs: Vec<RawDocumentBuf>,
    result: &mut CollectionRestore,
) -> Result<()> {
    let coll = mongo.client.database(db).collection::<RawDocumentBuf>(name);
    let doing = format!("replace documents of {db}.{name}");
    for d in docs {
        let id = raw_id(&d);
        let filter = doc! {"_id": Bson::try_from(id.clone()).unwrap_or(Bson::Null)};
        let stored = coll
            .find_one(filter.clone())
            .await
            .map_err(|e| mongo.error(e, &doing))?;
        match &stored {
            Some(s) if s.as_bytes() == d.as_bytes() => {
                result.already_present += 1;
                continue;
            }
            Some(_) => {
                coll.delete_one(filter)
                    .await
                    .map_err(|e| mongo.error(e, &doing))?;
            }
            None => {}
        }
        match coll.insert_one(&d).await {
            Ok(_) if stored.is_some() => result.replaced += 1,
            Ok(_) => result.inserted += 1,
            Err(e) => {
                result.failed += 1;
                if result.examples.len() < MAX_EXAMPLES {
                    result.examples.push(format!(
                        "_id {}: {}",
                        show_id(&d),
                        first_line(&e.to_string())
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Whether a document holds a field name starting with `$` at any depth.
fn has_dollar_field(d: &mongodb::bson::RawDocument) -> bool {
    use mongodb::bson::RawBsonRef;
    fn value(v: RawBsonRef<'_>) -> bool {
        match v {
            RawBsonRef::Document(d) => has_dollar_field(d),
            RawBsonRef::Array(a) => a.into_iter().flatten().any(value),
            _ => false,
        }
    }
    d.into_iter()
        .flatten()
        .any(|(k, v)| k.starts_with('$') || value(v))
}

fn raw_id(d: &RawDocumentBuf) -> mongodb::bson::RawBson {
    d.get("_id")
        .ok()
        .flatten()
        .map(|v| v.to_raw_bson())
        .unwrap_or(mongodb::bson::RawBson::Null)
}

/// A document's `_id` as relaxed extended JSON, for examples of failures.
fn show_id(d: &RawDocumentBuf) -> String {
    d.get("_id")
        .ok()
        .flatten()
        .and_then(|v| Bson::try_from(v).ok())
        .map(|v| v.into_relaxed_extjson().to_string())
        .unwrap_or_else(|| "?".into())
}

/// One `update` command of replacements by `_id`; returns the documents refused with a duplicate
/// key when `keep_duplicates` (else they are counted as failed).
async fn replace_batch(
    mongo: &Mongo,
    db: &str,
    name: &str,
    batch: Vec<RawDocumentBuf>,
    result: &mut CollectionRestore,
    keep_duplicates: bool,
) -> Result<Vec<RawDocumentBuf>> {
    use mongodb::bson::{rawdoc, RawArrayBuf};
    let mut updates = RawArrayBuf::new();
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    for d in &batch {
        updates.push(rawdoc! {"q": {"_id": raw_id(d)}, "u": d.clone(), "upsert": true});
    }
    let command = rawdoc! {"update": name, "updates": updates, "ordered": false};
    let doing = format!("replace documents of {db}.{name}");
    let reply = mongo
        .client
        .database(db)
        .run_raw_command(command)
        .await
        .map_err(|e| mongo.error(e, &doing))?;
    let count = |key: &str| match reply.get(key) {
        Some(Bson::Int32(n)) => *n as u64,
        Some(Bson::Int64(n)) => *n as u64,
        _ => 0,
    };
    let upserted = reply.get_array("upserted").map(|a| a.len()).unwrap_or(0) as u64;
    let modified = count("nModified");
    result.inserted += upserted;
    result.replaced += modified;
    result.already_present += count("n").saturating_sub(upserted + modified);
    let mut refused = Vec::new();
    let errors = reply.get_array("writeErrors").cloned().unwrap_or_default();
    for error in errors.iter().filter_map(Bson::as_document) {
        let index = error.get_i32("index").unwrap_or(-1);
        let code = error.get_i32("code").unwrap_or(0);
        let Some(doc) = usize::try_from(index).ok().and_then(|i| batch.get(i)) else {
            continue;
        };
        if keep_duplicates && code == 11000 {
            refused.push(doc.clone());
            continue;
        }
        result.failed += 1;
        if result.examples.len() < MAX_EXAMPLES {
            result.examples.push(format!(
                "_id {}: {} (code {code})",
                show_id(doc),
                first_line(error.get_str("errmsg").unwrap_or(""))
            ));
        }
    }
    Ok(refused)
}

/// Adds a batch's outcome to `result`: write errors are counted with examples; anything else fails.
/// A duplicate `_id` whose stored document is byte-identical is no failure: that document is
/// already restored (a second restore over the first).
async fn account(
    mongo: &Mongo,
    db: &str,
    name: &str,
    batch: Vec<RawDocumentBuf>,
    outcome: std::result::Result<u64, mongodb::error::Error>,
    result: &mut CollectionRestore,
) -> Result<()> {
    let e = match outcome {
        Ok(n) => {
            result.inserted += n;
            return Ok(());
        }
        Err(e) => e,
    };
    let DriverKind::InsertMany(failure) = e.kind.as_ref() else {
        return Err(mongo.error(e, &format!("insert into {db}.{name}")));
    };
    if failure.write_concern_error.is_some() && failure.write_errors.is_none() {
        return Err(mongo.error(e, &format!("insert into {db}.{name}")));
    }
    let all_errors = failure.write_errors.as_deref().unwrap_or_default();
    result.inserted += (batch.len() - all_errors.len()) as u64;
    let identical = already_present(mongo, db, name, &batch, all_errors).await?;
    result.already_present += identical.len() as u64;
    let errors: Vec<_> = all_errors
        .iter()
        .filter(|w| !identical.contains(&w.index))
        .collect();
    result.failed += errors.len() as u64;
    for w in errors {
        if result.examples.len() >= MAX_EXAMPLES {
            break;
        }
        let id = batch
            .get(w.index)
            .map(show_id)
            .unwrap_or_else(|| "?".into());
        result.examples.push(format!(
            "_id {id}: {} (code {})",
            first_line(&w.message),
            w.code
        ));
    }
    Ok(())
}

/// Indexes (in the batch) of duplicate-_id failures whose stored document has the same bytes.
async fn already_present(
    mongo: &Mongo,
    db: &str,
    name: &str,
    batch: &[RawDocumentBuf],
    errors: &[mongodb::error::IndexedWriteError],
) -> Result<Vec<usize>> {
    let dups: Vec<(usize, Bson)> = errors
        .iter()
        .filter(|w| w.code == 11000)
        .filter_map(|w| {
            let id = batch.get(w.index)?.get("_id").ok().flatten()?;
            Some((w.index, Bson::try_from(id).ok()?))
        })
        .collect();
    if dups.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Bson> = dups.iter().map(|(_, id)| id.clone()).collect();
    let doing = format!("compare documents of {db}.{name}");
    let mut cursor = mongo
        .client
        .database(db)
        .collection::<RawDocumentBuf>(name)
        .find(doc! {"_id": {"$in": ids}})
        .await
        .map_err(|e| mongo.error(e, &doing))?;
    let mut stored: Vec<Vec<u8>> = Vec::new();
    while cursor.advance().await.map_err(|e| mongo.error(e, &doing))? {
        stored.push(cursor.current().as_bytes().to_vec());
    }
    Ok(dups
        .into_iter()
        .filter(|(i, _)| stored.iter().any(|s| s.as_slice() == batch[*i].as_bytes()))
        .map(|(i, _)| i)
        .collect())
}

/// Restores the database directories of a dump root (`<root>/<db>/`): `db_name`'s, or every one when
/// it is empty. A missing directory of a named database is an error unless `missing_is_empty` (a
/// cycle that started on an empty database has none).
pub async fn restore_dump_root(
    mongo: &Mongo,
    root: &Path,
    db_name: &str,
    target_db: Option<&str>,
    opts: &RestoreOptions,
    missing_is_empty: bool,
) -> Result<Vec<DatabaseRestore>> {
    let dbs = if db_name.is_empty() {
        database_dirs(root)?
    } else {
        vec![db_name.to_string()]
    };
    if target_db.is_some() && dbs.len() > 1 {
        return Err(Error::config(
            "--target-db needs db_name: the backup holds several databases",
        ));
    }
    let mut restored = Vec::new();
    for db in dbs {
        let dir = root.join(&db);
        if missing_is_empty && !dir.is_dir() {
            // Restored as the empty database it was (with drop, the target is emptied).
            log::warn!("{} is absent: the database was empty", dir.display());
            crate::private::create_dir(&dir)?;
        }
        let target = target_db.map(str::to_string).unwrap_or(db);
        log::info!("restoring {} into database {target}", dir.display());
        restored.push(restore_database(mongo, &dir, &target, opts).await?);
    }
    Ok(restored)
}

/// A selective restore of a dump root: each `(source, target)` namespace pair, the dumped
/// collection `source` restored into `target`; nothing else is read from the dump or written.
/// Reported by target database.
pub async fn restore_selected(
    mongo: &Mongo,
    root: &Path,
    pairs: &[(String, String)],
    opts: &RestoreOptions,
) -> Result<Vec<DatabaseRestore>> {
    let started = Instant::now();
    let mut dumped: BTreeMap<String, DumpedCollection> = BTreeMap::new();
    let mut databases: BTreeMap<String, DatabaseRestore> = BTreeMap::new();
    let mut scanned = std::collections::BTreeSet::new();
    for (source, _) in pairs {
        let (db, _) = crate::namespace::split(source);
        if scanned.insert(db) {
            let dir = root.join(db);
            if dir.is_dir() {
                let (found, ignored) = scan(&dir)?;
                dumped.extend(found.into_iter().map(|c| (format!("{db}.{}", c.name), c)));
                if !ignored.is_empty() {
                    // What a whole-database restore lists in its report.
                    log::warn!(
                        "{}: ignored {} that a dump does not hold: {}",
                        dir.display(),
                        crate::logging::count(ignored.len() as u64, "file"),
                        ignored.join(", ")
                    );
                }
            }
        }
    }
    // Collections before views, as a whole-database restore does.
    let mut order: Vec<&(String, String)> = pairs.iter().collect();
    order.sort_by_key(|(source, _)| dumped.get(source).is_some_and(|c| c.metadata.is_view()));
    for (source, target) in order {
        let Some(c) = dumped.get(source) else {
            continue;
        };
        let (db, name) = crate::namespace::split(target);
        log::info!("restoring {source} into {target}");
        let mut result = restore_collection(mongo, db, name, c, opts).await?;
        result.source = (source != target).then(|| source.clone());
        let report = databases
            .entry(db.to_string())
            .or_insert_with(|| DatabaseRestore {
                database: db.to_string(),
                ..Default::default()
            });
        report.collections.push(result);
    }
    let restored: Vec<DatabaseRestore> = databases.into_values().collect();
    log::info!(
        "restored {} of the dump, {} in {:.1}s",
        crate::logging::count(
            restored.iter().map(|d| d.collections.len() as u64).sum(),
            "collection"
        ),
        crate::logging::count(restored.iter().map(|d| d.documents()).sum(), "document"),
        started.elapsed().as_secs_f64()
    );
    Ok(restored)
}
