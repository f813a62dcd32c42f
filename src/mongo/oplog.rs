//! Reading `local.oplog.rs`: the newest and oldest positions, and capturing the entries of one
//! database between two positions into an `oplog.bson` that `mongorestore --oplogReplay` reads.
//!
//! Invariants kept here:
//! - A range is `(from, to]` on whole timestamps. secantusdb gives every entry of a transaction the
//!   same ts, so a range never ends inside a transaction.
//! - What a database is: CRUD on `<db>.*`, DDL on `<db>.$cmd`, and `admin.$cmd` entries that touch it
//!   (`applyOps` of transactions and of batched inserts, kept whole; `commitTransaction` and
//!   `abortTransaction`, kept so replay can close prepared transactions). The old scripts' `ns` regex
//!   missed the `admin.$cmd` ones: transactions were silently absent from every increment.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document, RawDocument, RawDocumentBuf};
use mongodb::options::FindOptions;

use super::connect::Mongo;
use super::restore::BsonReader;
use crate::chain::Contents;
use crate::error::{Error, ErrorKind, Result};

pub use crate::position::Position;

/// Databases that belong to the server, never captured when every database is backed up.
const SYSTEM_DATABASES: &[&str] = &["admin", "local", "config"];

async fn edge(mongo: &Mongo, direction: i32) -> Result<Option<Position>> {
    let oplog = mongo
        .client
        .database("local")
        .collection::<Document>("oplog.rs");
    let options = FindOptions::builder()
        .sort(doc! {"$natural": direction})
        .limit(1)
        .projection(doc! {"ts": 1})
        .build();
    let mut cursor = oplog
        .find(doc! {})
        .with_options(options)
        .await
        .map_err(|e| mongo.error(e, "read local.oplog.rs"))?;
    if cursor
        .advance()
        .await
        .map_err(|e| mongo.error(e, "read local.oplog.rs"))?
    {
        let d = cursor
            .deserialize_current()
            .map_err(|e| mongo.error(e, "read local.oplog.rs"))?;
        Ok(d.get_timestamp("ts").ok().map(Position::from))
    } else {
        Ok(None)
    }
}

/// The newest position in the oplog (`None`: the oplog is empty or absent).
pub async fn newest(mongo: &Mongo) -> Result<Option<Position>> {
    edge(mongo, -1).await
}

/// The oldest position still in the oplog.
pub async fn oldest(mongo: &Mongo) -> Result<Option<Position>> {
    edge(mongo, 1).await
}

/// How full the capped oplog is, from 0 to 1, when the server says: mongod's `collStats` (bytes
/// against `maxSize`), else the entry cap in its collection options against its count (secantusdb).
/// While an oplog is not full nothing has been pruned, so its time span is no limit yet.
pub async fn fill(mongo: &Mongo) -> Result<Option<f64>> {
    let local = mongo.client.database("local");
    if let Ok(stats) = local.run_command(doc! {"collStats": "oplog.rs"}).await {
        if let (Some(size), Some(max)) = (number(stats.get("size")), number(stats.get("maxSize"))) {
            if max > 0.0 {
                return Ok(Some((size / max).min(1.0)));
            }
        }
    }
    let doing = "read the oplog's options";
    let specs: Vec<Document> = local
        .run_cursor_command(doc! {"listCollections": 1, "filter": {"name": "oplog.rs"}})
        .await
        .map_err(|e| mongo.error(e, doing))?
        .try_collect()
        .await
        .map_err(|e| mongo.error(e, doing))?;
    let max = specs
        .first()
        .and_then(|s| s.get_document("options").ok())
        .and_then(|o| number(o.get("max")))
        .filter(|m| *m > 0.0);
    let Some(max) = max else {
        return Ok(None);
    };
    let count = local
        .collection::<Document>("oplog.rs")
        .estimated_document_count()
        .await
        .map_err(|e| mongo.error(e, "count the oplog"))?;
    Ok(Some((count as f64 / max).min(1.0)))
}

fn number(value: Option<&Bson>) -> Option<f64> {
    match value? {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(n) => Some(*n),
        _ => None,
    }
}

/// Fails with one line when the server has no oplog (a standalone server).
pub async fn require_replica_set(mongo: &Mongo) -> Result<()> {
    let hello = mongo
        .client
        .database("admin")
        .run_command(doc! {"hello": 1})
        .await
        .map_err(|e| mongo.error(e, "ask the server its role"))?;
    let in_set = hello.get_str("setName").is_ok();
    if !in_set || newest(mongo).await?.is_none() {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "{} is a standalone server without an oplog: incremental backups (is_inc_backup=1) need a replica set; use is_inc_backup=0 for full backups",
                mongo.target.describe()
            ),
        ));
    }
    Ok(())
}

/// Whether an oplog entry belongs to database `db` (empty = every user database).
pub fn belongs_to(entry: &RawDocument, db: &str) -> bool {
    let ns = entry.get_str("ns").unwrap_or("");
    let op = entry.get_str("op").unwrap_or("");
    if op == "n" {
        return false;
    }
    if ns == "admin.$cmd" {
        return admin_command_touches(entry, db);
    }
    let entry_db = ns.split('.').next().unwrap_or("");
    if !db.is_empty() && renamed_into(entry).is_some_and(|(_, to)| database_of(to) == db) {
        // Logged under the source database (secantusdb): it brings a collection into `db`.
        return true;
    }
    if db.is_empty() {
        !SYSTEM_DATABASES.contains(&entry_db)
    } else {
        entry_db == db
    }
}

/// `(from, to)` namespaces of a `renameCollection` command entry.
pub fn renamed_into(entry: &RawDocument) -> Option<(&str, &str)> {
    if entry.get_str("op").ok()? != "c" {
        return None;
    }
    let o = entry.get_document("o").ok()?;
    Some((o.get_str("renameCollection").ok()?, o.get_str("to").ok()?))
}

fn database_of(ns: &str) -> &str {
    ns.split('.').next().unwrap_or("")
}

fn admin_command_touches(entry: &RawDocument, db: &str) -> bool {
    let Ok(o) = entry.get_document("o") else {
        return false;
    };
    if o.get("commitTransaction").ok().flatten().is_some()
        || o.get("abortTransaction").ok().flatten().is_some()
    {
        return true;
    }
    let Ok(ops) = o.get_array("applyOps") else {
        return false;
    };
    ops.into_iter().any(|op| match op {
        Ok(mongodb::bson::RawBsonRef::Document(inner)) => belongs_to(inner, db),
        _ => false,
    })
}

/// What `capture` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub entries: u64,
    pub bytes: u64,
    pub first: Option<Position>,
    pub last: Option<Position>,
    /// Collections renamed into the database from another one (`from -> to`): their documents
    /// were never captured, so an increment cannot restore them.
    pub renamed_in: Vec<String>,
}

/// Writes the entries of `db` with `from < ts <= to` to `path` (raw BSON, in oplog order).
/// Nothing is written (and the file not created) when no entry matches.
pub async fn capture(
    mongo: &Mongo,
    db: &str,
    from: Position,
    to: Position,
    path: &Path,
    progress: &crate::progress::Progress,
) -> Result<Capture> {
    let oplog = mongo
        .client
        .database("local")
        .collection::<RawDocumentBuf>("oplog.rs");
    let filter =
        doc! {"ts": {"$gt": Bson::Timestamp(from.into()), "$lte": Bson::Timestamp(to.into())}};
    let doing = "read local.oplog.rs";
    let mut cursor = oplog
        .find(filter)
        .sort(doc! {"$natural": 1})
        .await
        .map_err(|e| mongo.error(e, doing))?;
    let mut out: Option<std::io::BufWriter<std::fs::File>> = None;
    let mut capture = Capture {
        entries: 0,
        bytes: 0,
        first: None,
        last: None,
        renamed_in: Vec::new(),
    };
    let mut task = progress.task(
        format!("capture oplog of {db}"),
        crate::progress::Unit::Documents,
        None,
    );
    while cursor.advance().await.map_err(|e| mongo.error(e, doing))? {
        let entry = cursor.current();
        if !belongs_to(entry, db) {
            continue;
        }
        if out.is_none() {
            out = Some(std::io::BufWriter::with_capacity(
                1 << 20,
                crate::private::create_file(path)?,
            ));
        }
        if let Some((from, to)) = renamed_into(entry) {
            if !db.is_empty() && database_of(from) != db && database_of(to) == db {
                capture.renamed_in.push(format!("{from} -> {to}"));
            }
        }
        let raw = entry.as_bytes();
        out.as_mut()
            .expect("just opened")
            .write_all(raw)
            .map_err(|e| Error::io("write", path, e))?;
        let ts = entry.get_timestamp("ts").ok().map(Position::from);
        capture.first = capture.first.or(ts);
        capture.last = ts.or(capture.last);
        capture.entries += 1;
        capture.bytes += raw.len() as u64;
        task.add(1, raw.len() as u64);
    }
    task.finish();
    if let Some(out) = out {
        let file = out
            .into_inner()
            .map_err(|e| Error::io("write", path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io("fsync", path, e))?;
    }
    Ok(capture)
}

/// What an `oplog.bson` holds: its entries counted, its first and last positions, and (for a dry
/// run) the entries up to `until` by kind. Entries must come in oplog order: each after the one
/// before, or at the same position only within one transaction (secantusdb gives every entry of a
/// transaction the transaction's position). Anything else is an `Integrity` error naming the entry.
pub fn summarize_file(
    path: &Path,
    until: Option<Position>,
) -> Result<(Contents, BTreeMap<String, u64>)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut reader = BsonReader::new(std::io::BufReader::with_capacity(1 << 20, file), path);
    let mut contents = Contents::default();
    let mut by_op: BTreeMap<String, u64> = BTreeMap::new();
    let mut previous: Option<(Position, Option<RawDocumentBuf>)> = None;
    while let Some(entry) = reader.next_document()? {
        let ts = entry.get_timestamp("ts").map(Position::from).map_err(|_| {
            Error::new(
                ErrorKind::Integrity,
                format!(
                    "{}: entry {} has no timestamp",
                    path.display(),
                    contents.entries + 1
                ),
            )
        })?;
        let txn = transaction_of(&entry);
        if let Some((before, before_txn)) = &previous {
            let same_txn = txn.is_some()
                && txn.as_ref().map(|t| t.as_bytes()) == before_txn.as_ref().map(|t| t.as_bytes());
            if ts < *before || (ts == *before && !same_txn) {
                return Err(Error::new(
                    ErrorKind::Integrity,
                    format!(
                        "{}: entries out of oplog order: entry {} at {ts} follows {before}",
                        path.display(),
                        contents.entries + 1
                    ),
                ));
            }
        }
        contents.entries += 1;
        contents.first = contents.first.or(Some(ts));
        contents.last = Some(ts);
        if until.is_none_or(|u| ts <= u) {
            let op = entry.get_str("op").unwrap_or("?").to_string();
            *by_op.entry(op).or_default() += 1;
        }
        previous = Some((ts, txn));
    }
    Ok((contents, by_op))
}

/// `{lsid, txnNumber}` of an entry written in a transaction.
fn transaction_of(entry: &RawDocument) -> Option<RawDocumentBuf> {
    let lsid = entry.get("lsid").ok().flatten()?;
    let number = entry.get("txnNumber").ok().flatten()?;
    let mut key = RawDocumentBuf::new();
    key.append("lsid", lsid.to_raw_bson());
    key.append("txnNumber", number.to_raw_bson());
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(d: Document) -> RawDocumentBuf {
        RawDocumentBuf::from_document(&d).unwrap()
    }

    /// mongod's own entries (../shared fixtures from mongo-tools): CRUD, DDL and the `admin.$cmd`
    /// applyOps of MongoDB 7+ batched inserts all belong to their database and to no other.
    #[test]
    fn mongod_fixture_entries_belong_to_their_database() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/mongo-tools/mongorestore-testdata/oplogs/bson");
        let Ok(files) = std::fs::read_dir(&dir) else {
            eprintln!("skipped: {} is absent (a plain clone)", dir.display());
            return;
        };
        let mut checked = 0;
        for file in files.map(|f| f.unwrap().path()) {
            let data = std::fs::read(&file).unwrap();
            let mut reader = crate::mongo::restore::BsonReader::new(&data[..], &file);
            while let Some(entry) = reader.next_document().unwrap() {
                if entry.get_str("op").unwrap() == "n" {
                    continue;
                }
                let ns = entry.get_str("ns").unwrap();
                let db = if ns == "admin.$cmd" {
                    let ops = entry
                        .get_document("o")
                        .unwrap()
                        .get_array("applyOps")
                        .unwrap();
                    let first = ops.into_iter().next().unwrap().unwrap();
                    first
                        .as_document()
                        .unwrap()
                        .get_str("ns")
                        .unwrap()
                        .split('.')
                        .next()
                        .unwrap()
                        .to_string()
                } else {
                    ns.split('.').next().unwrap().to_string()
                };
                assert!(belongs_to(&entry, &db), "{}: {ns}", file.display());
                assert!(
                    !belongs_to(&entry, "some_other_db"),
                    "{}: {ns}",
                    file.display()
                );
                checked += 1;
            }
        }
        assert!(checked > 10);
    }

    #[test]
    fn database_membership() {
        let i = raw(doc! {"op": "i", "ns": "app.users", "o": {"_id": 1}});
        assert!(belongs_to(&i, "app"));
        assert!(!belongs_to(&i, "app2"));
        assert!(belongs_to(&i, ""));
        let ddl = raw(doc! {"op": "c", "ns": "app.$cmd", "o": {"create": "x"}});
        assert!(belongs_to(&ddl, "app"));
        let txn = raw(doc! {"op": "c", "ns": "admin.$cmd", "o": {"applyOps": [
            {"op": "i", "ns": "other.c", "o": {"_id": 1}},
            {"op": "i", "ns": "app.c", "o": {"_id": 2}},
        ]}});
        assert!(belongs_to(&txn, "app"));
        assert!(!belongs_to(&txn, "third"));
        let commit = raw(doc! {"op": "c", "ns": "admin.$cmd", "o": {"commitTransaction": 1}});
        assert!(belongs_to(&commit, "app"));
        let noop = raw(doc! {"op": "n", "ns": "", "o": {"msg": "x"}});
        assert!(!belongs_to(&noop, ""));
        let local = raw(doc! {"op": "i", "ns": "local.x", "o": {"_id": 1}});
        assert!(!belongs_to(&local, ""));
        // secantusdb logs a rename across databases under the source's $cmd.
        let moved_in = raw(
            doc! {"op": "c", "ns": "other.$cmd", "o": {"renameCollection": "other.x", "to": "app.moved"}},
        );
        assert!(belongs_to(&moved_in, "app") && belongs_to(&moved_in, "other"));
        assert!(!belongs_to(&moved_in, "third"));
    }
}
