//! Applies oplog entries in order with ordinary commands, so the restore user needs only readWrite +
//! dbAdmin on the target database. Idempotent: every write is "make the document be this".
//!
//! Rules, in one place:
//! - `i`: the whole document, upserted by `_id`; into `<db>.system.indexes` (≤ 3.x): an index build.
//! - `u`: the current document is read, the entry applied on the client (`update`), written back whole.
//!   A missing target is not an error (the document was deleted later); it is counted.
//! - `d`: delete by `_id`. `n`: skipped.
//! - CRUD between two commands is batched per collection (documents of different collections do not
//!   depend on each other): per collection one `find` of the targets, one `delete` and one `update`
//!   (replacements, upsert) command, writes in the order of each document's last change.
//! - `c`: the DDL commands below, run after the pending batch. `applyOps` recurses; mongod's
//!   transactions (`partialTxn` chains, `prepare` + `commitTransaction`/`abortTransaction`) are
//!   buffered per (lsid, txnNumber) and applied only at commit. secantusdb's per-op transaction
//!   entries are plain CRUD and apply in order.
//! - Anything else stops the replay with one line naming its ts, unless `skip_unknown`.
//!
//! With a namespace selection (`Routes`) entries are routed by collection instead of by database:
//! `Lineage` follows each collection through renames and drops, and only the instances given a
//! home (those selected under the name they have at the point restored) are written, always into
//! that home. Renames then move nothing on the server and dropped instances were never written.

use std::collections::{BTreeMap, HashMap};

use mongodb::bson::{doc, Bson, Document};
use mongodb::error::ErrorKind as DriverKind;

use super::batch::{self, Batch, Op};
use crate::error::{Error, ErrorKind, Result};
use crate::mongo::Mongo;
use crate::namespace::{split, Lineage};
use crate::position::Position;

/// Server error codes that mean "already done" when a DDL entry is applied again.
const ALREADY_DONE: &[i32] = &[26, 27, 48, 85, 86];
const BATCH_OPS: usize = 5000;

#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// The database whose entries are replayed (empty: every database).
    pub source_db: String,
    /// Replay into this database instead (only with a source database).
    pub target_db: Option<String>,
    /// Otherwise: replay database `x` into `<db_prefix>_x` (scratch databases of `verify --deep`).
    pub db_prefix: Option<String>,
    /// Stop after the last entry at or before this position.
    pub until: Option<Position>,
    pub skip_unknown: bool,
    pub progress: crate::progress::Progress,
    /// A selective restore: entries routed by collection instance (see the module comment).
    pub routes: Option<Routes>,
}

/// How a selective replay routes entries.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    /// The collections present before the first entry (the dump's, in the order they were seeded).
    pub lineage: Lineage,
    /// Instance → the namespace it is restored into. Instances without one are not written.
    pub homes: HashMap<u64, String>,
    /// Write nothing, only follow the names (planning a selective restore; no server needed).
    pub scan_only: bool,
}

/// What a scan-only replay learned: the collections live at the end, and the entries each
/// instance received, by the namespace they were written to.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub live: BTreeMap<String, u64>,
    pub entries: HashMap<u64, BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplaySummary {
    /// Entries applied, by kind: `i`, `u`, `d`, or the command name.
    pub applied: BTreeMap<String, u64>,
    pub skipped: u64,
    pub missing_update_targets: u64,
    pub transactions_committed: u64,
    pub transactions_aborted: u64,
    /// Of the committed ones, those the server logged op by op, without an `applyOps` wrapper
    /// (secantusdb): their writes are applied in order like any other.
    pub transactions_logged_op_by_op: u64,
    /// Entries an old increment repeated from the one before it, applied once.
    pub repeated: u64,
    pub first: Option<Position>,
    pub last: Option<Position>,
    /// The replay stopped at `until`.
    pub stopped_at_until: bool,
    /// What the operator should know (a collection renamed out of the restored database).
    pub notes: Vec<String>,
    /// Selective restores: entries applied, by the namespace the oplog names.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_namespace: BTreeMap<String, u64>,
    /// Selective restores: entries of collections outside the selection, not applied.
    pub excluded: u64,
}

pub struct Replayer<'a> {
    /// `None` only for a scan-only replay, which never writes.
    mongo: Option<&'a Mongo>,
    opts: ReplayOptions,
    scan: Scan,
    /// Pending CRUD, one batch per collection in first-seen order.
    batches: Vec<Batch>,
    pending: usize,
    txns: HashMap<String, Vec<Document>>,
    /// Whether a collection has a unique index besides `_id` (forgotten after any DDL).
    unique: HashMap<(String, String), bool>,
    /// The transaction of the last op-by-op transaction entry (they come one after another).
    last_op_by_op_txn: Option<String>,
    pub summary: ReplaySummary,
}

impl<'a> Replayer<'a> {
    pub fn new(mongo: Option<&'a Mongo>, opts: ReplayOptions) -> Self {
        Replayer {
            mongo,
            opts,
            scan: Scan::default(),
            batches: Vec::new(),
            pending: 0,
            txns: HashMap::new(),
            unique: HashMap::new(),
            last_op_by_op_txn: None,
            summary: ReplaySummary::default(),
        }
    }

    /// Applies one top-level entry. Returns false once `until` is passed (stop reading).
    pub async fn apply(&mut self, entry: Document) -> Result<bool> {
        let ts = entry.get_timestamp("ts").ok().map(Position::from);
        if let (Some(ts), Some(until)) = (ts, self.opts.until) {
            if ts > until {
                self.summary.stopped_at_until = true;
                return Ok(false);
            }
        }
        self.summary.first = self.summary.first.or(ts);
        self.summary.last = ts.or(self.summary.last);
        self.apply_one(&entry).await?;
        Ok(true)
    }

    /// Writes what is still batched. Call once after the last entry.
    pub async fn finish(&mut self) -> Result<()> {
        self.flush().await
    }

    /// What a scan-only replay learned (after `finish`).
    pub fn into_scan(mut self) -> Scan {
        if let Some(routes) = &self.opts.routes {
            self.scan.live = routes.lineage.live();
        }
        self.scan
    }

    fn mongo(&self) -> &'a Mongo {
        self.mongo.expect("a scan-only replay writes nothing")
    }

    fn in_scope(&self, db: &str) -> bool {
        self.opts.source_db.is_empty() || db == self.opts.source_db
    }

    /// Selective routing of an entry on `ns`: the instance it belongs to (started when `start`
    /// and there is none), and that instance's home if it has one. Counted either way.
    fn route(&mut self, ns: &str, start: bool) -> Option<(String, String)> {
        let routes = self.opts.routes.as_mut()?;
        let id = match start {
            true => Some(routes.lineage.instance(ns)),
            false => routes.lineage.get(ns),
        };
        let home = id.and_then(|id| routes.homes.get(&id).cloned());
        let scan_only = routes.scan_only;
        if let Some(id) = id {
            *self
                .scan
                .entries
                .entry(id)
                .or_default()
                .entry(ns.to_string())
                .or_default() += 1;
        }
        match home {
            Some(home) if !scan_only => {
                *self.summary.by_namespace.entry(ns.to_string()).or_default() += 1;
                let (db, coll) = split(&home);
                Some((db.to_string(), coll.to_string()))
            }
            Some(_) => None,
            None => {
                self.summary.excluded += 1;
                None
            }
        }
    }

    /// Where a CRUD entry on `db.coll` is written, if anywhere.
    fn crud_target(&mut self, db: &str, coll: &str) -> Option<(String, String)> {
        if self.opts.routes.is_none() {
            return self.target_db(db).map(|t| (t, coll.to_string()));
        }
        if !self.in_scope(db) {
            self.summary.skipped += 1;
            return None;
        }
        self.route(&format!("{db}.{coll}"), true)
    }

    fn target_db(&self, db: &str) -> Option<String> {
        if !self.opts.source_db.is_empty() && db != self.opts.source_db {
            return None;
        }
        Some(match (&self.opts.target_db, &self.opts.db_prefix) {
            (Some(target), _) => target.clone(),
            (None, Some(prefix)) => prefixed_name(prefix, db),
            (None, None) => db.to_string(),
        })
    }

    /// A CRUD entry with a session and transaction number but no statement id belongs to a
    /// transaction logged op by op (mongod's retryable writes carry `stmtId`; its transactions come
    /// in `applyOps`, whose inner entries have no session).
    fn note_op_by_op_transaction(&mut self, entry: &Document) {
        if !entry.contains_key("lsid")
            || !entry.contains_key("txnNumber")
            || entry.contains_key("stmtId")
        {
            return;
        }
        let key = txn_key(entry);
        if self.last_op_by_op_txn.as_ref() != Some(&key) {
            self.summary.transactions_committed += 1;
            self.summary.transactions_logged_op_by_op += 1;
            self.last_op_by_op_txn = Some(key);
        }
    }

    fn count(&mut self, kind: &str) {
        *self.summary.applied.entry(kind.to_string()).or_default() += 1;
    }

    async fn apply_one(&mut self, entry: &Document) -> Result<()> {
        let op = entry.get_str("op").unwrap_or("");
        let ns = entry.get_str("ns").unwrap_or("");
        if op == "n" {
            self.summary.skipped += 1;
            return Ok(());
        }
        let (db, coll) = ns.split_once('.').unwrap_or((ns, ""));
        if op == "c" {
            return Box::pin(self.command(entry, db)).await;
        }
        let o = entry
            .get_document("o")
            .map_err(|_| self.unknown(entry, "an entry without o"))?;
        if op == "i" && coll == "system.indexes" {
            let on = o.get_str("ns").unwrap_or("").to_string();
            let (on_db, on_coll) = split(&on);
            if on_coll.is_empty() {
                return Err(self.unknown(entry, "an index build without ns"));
            }
            let Some((target, on)) = self.crud_target(on_db, on_coll) else {
                self.summary.skipped += u64::from(self.opts.routes.is_none());
                return Ok(());
            };
            self.flush().await?;
            let mut spec = o.clone();
            spec.remove("ns");
            self.create_indexes(&target, &on, vec![spec]).await?;
            self.count("createIndexes");
            return Ok(());
        }
        let Some((target, coll)) = self.crud_target(db, coll) else {
            self.summary.skipped += u64::from(self.opts.routes.is_none());
            return Ok(());
        };
        self.note_op_by_op_transaction(entry);
        let id_source = entry
            .get_document("o2")
            .ok()
            .filter(|o2| o2.contains_key("_id"))
            .unwrap_or(o);
        let id = id_source
            .get("_id")
            .cloned()
            .ok_or_else(|| self.unknown(entry, "a CRUD entry without _id"))?;
        let next = match op {
            "i" => Op::Put(o.clone()),
            "u" => Op::Update {
                o: o.clone(),
                upsert: entry.get_bool("b").unwrap_or(false),
            },
            "d" => Op::Delete,
            _ => {
                return self.skip_or_fail(entry, "an unknown op");
            }
        };
        self.count(op);
        let index = match self
            .batches
            .iter()
            .position(|b| b.db == target && b.coll == coll)
        {
            Some(i) => i,
            None => {
                self.batches.push(Batch {
                    db: target,
                    coll,
                    ops: Vec::new(),
                });
                self.batches.len() - 1
            }
        };
        self.batches[index].ops.push((id, next));
        self.pending += 1;
        if self.pending >= BATCH_OPS {
            self.flush().await?;
        }
        Ok(())
    }

    fn unknown(&self, entry: &Document, what: &str) -> Error {
        let ts = entry
            .get_timestamp("ts")
            .map(|t| Position::from(t).to_string())
            .unwrap_or_default();
        let mut text = entry.to_string();
        if text.len() > 300 {
            text.truncate(300);
            text.push('…');
        }
        Error::new(
            ErrorKind::Mongo,
            format!("cannot replay oplog entry at ts {ts}, {what}: {text} (use --skip-unknown to skip such entries)"),
        )
    }

    fn skip_or_fail(&mut self, entry: &Document, what: &str) -> Result<()> {
        if self.opts.skip_unknown {
            log::warn!("{}", self.unknown(entry, what));
            self.summary.skipped += 1;
            Ok(())
        } else {
            Err(self.unknown(entry, what))
        }
    }

    /// Writes every pending batch.
    async fn flush(&mut self) -> Result<()> {
        self.pending = 0;
        for batch in std::mem::take(&mut self.batches) {
            self.flush_one(batch).await?;
        }
        Ok(())
    }

    /// Writes one collection's batch (see `batch`).
    async fn flush_one(&mut self, batch: Batch) -> Result<()> {
        let ns = (batch.db.clone(), batch.coll.clone());
        let unique = match self.unique.get(&ns) {
            Some(u) => *u,
            None => {
                let u = has_unique_index(self.mongo(), &ns.0, &ns.1).await?;
                self.unique.insert(ns, u);
                u
            }
        };
        self.summary.missing_update_targets += batch::write(self.mongo(), batch, unique).await?;
        Ok(())
    }

    async fn command(&mut self, entry: &Document, db: &str) -> Result<()> {
        let o = entry
            .get_document("o")
            .map_err(|_| self.unknown(entry, "a command without o"))?
            .clone();
        let name = o.keys().next().cloned().unwrap_or_default();
        self.flush().await?;
        self.unique.clear();
        if name == "applyOps" {
            return self.apply_ops(entry, &o).await;
        }
        if name == "commitTransaction" || name == "abortTransaction" {
            let key = txn_key(entry);
            if let Some(ops) = self.txns.remove(&key) {
                if name == "commitTransaction" {
                    for op in ops {
                        Box::pin(self.apply_one(&op)).await?;
                    }
                    self.flush().await?;
                    self.summary.transactions_committed += 1;
                } else {
                    self.summary.transactions_aborted += 1;
                }
            }
            return Ok(());
        }
        if self.opts.routes.is_some() {
            return self.routed_command(entry, &o, &name, db).await;
        }
        let Some(target) = self.target_db(db) else {
            self.summary.skipped += 1;
            return Ok(());
        };
        self.plain_command(entry, &o, &name, &target).await
    }

    /// A DDL entry with database routing: run on the target database under the same names.
    async fn plain_command(
        &mut self,
        entry: &Document,
        o: &Document,
        name: &str,
        target: &str,
    ) -> Result<()> {
        let mongo = self.mongo();
        let database = mongo.client.database(target);
        let coll = o.get_str(name).unwrap_or("").to_string();
        let command = match name {
            "create" => Some(create_command(o, &coll)),
            "drop" => Some(doc! {"drop": &coll}),
            "createIndexes" | "commitIndexBuild" => {
                self.create_indexes(target, &coll, index_specs(o, name))
                    .await?;
                None
            }
            "startIndexBuild" | "abortIndexBuild" => None,
            "dropIndexes" | "deleteIndexes" => Some(drop_indexes_command(o, &coll)),
            "collMod" | "convertToCapped" => Some(o.clone()),
            "dropDatabase" => Some(doc! {"dropDatabase": 1}),
            "renameCollection" => return self.rename(entry, o, target).await,
            _ => return self.skip_or_fail(entry, "an unknown command"),
        };
        if let Some(c) = command {
            run_ddl(mongo, &database, c, name).await?;
        }
        self.count(name);
        Ok(())
    }

    /// A DDL entry with collection routing (see the module comment): names move in the lineage;
    /// only commands on an instance with a home run, there.
    async fn routed_command(
        &mut self,
        entry: &Document,
        o: &Document,
        name: &str,
        db: &str,
    ) -> Result<()> {
        let coll = o.get_str(name).unwrap_or("").to_string();
        let ns = format!("{db}.{coll}");
        let in_scope = self.in_scope(db);
        let lineage = &mut self.opts.routes.as_mut().expect("routed").lineage;
        // Drops and renames are followed, not run: each selected instance already writes into its
        // one home. They are counted as applied like the other commands.
        match name {
            "dropDatabase" => lineage.drop_database(db),
            "drop" => lineage.drop(&ns),
            "renameCollection" => {
                let (from, to) = (o.get_str(name).unwrap_or(""), o.get_str("to").unwrap_or(""));
                if from.is_empty() || to.is_empty() {
                    return self.skip_or_fail(entry, "a malformed renameCollection");
                }
                // What lived at `to` ends (dropTarget); the homes do not move.
                lineage.rename(from, to);
            }
            "startIndexBuild" | "abortIndexBuild" => return Ok(()),
            _ => {}
        }
        if matches!(name, "dropDatabase" | "drop" | "renameCollection") {
            self.count(name);
            return Ok(());
        }
        if !in_scope {
            self.summary.skipped += 1;
            return Ok(());
        }
        let start = matches!(name, "create" | "createIndexes" | "commitIndexBuild");
        let known = matches!(
            name,
            "create"
                | "createIndexes"
                | "commitIndexBuild"
                | "dropIndexes"
                | "deleteIndexes"
                | "collMod"
                | "convertToCapped"
        );
        if !known {
            return self.skip_or_fail(entry, "an unknown command");
        }
        let Some((home_db, home_coll)) = self.route(&ns, start) else {
            return Ok(());
        };
        let command = match name {
            "create" => Some(create_command(o, &home_coll)),
            "createIndexes" | "commitIndexBuild" => {
                self.create_indexes(&home_db, &home_coll, index_specs(o, name))
                    .await?;
                None
            }
            "dropIndexes" | "deleteIndexes" => Some(drop_indexes_command(o, &home_coll)),
            _ => {
                let mut c = o.clone();
                c.insert(name, home_coll.as_str());
                Some(c)
            }
        };
        if let Some(c) = command {
            let mongo = self.mongo();
            run_ddl(mongo, &mongo.client.database(&home_db), c, name).await?;
        }
        self.count(name);
        Ok(())
    }

    /// `renameCollection`, within a database or across two. Into a database the restore does not
    /// hold, the collection leaves it: a drop, said in the summary. With every database restored,
    /// both ends are mapped.
    async fn rename(&mut self, entry: &Document, o: &Document, target: &str) -> Result<()> {
        let from = o.get_str("renameCollection").unwrap_or("");
        let to = o.get_str("to").unwrap_or("");
        let (Some((_, from_coll)), Some((to_db, to_coll))) =
            (from.split_once('.'), to.split_once('.'))
        else {
            return self.skip_or_fail(entry, "a malformed renameCollection");
        };
        let Some(to_target) = self.target_db(to_db) else {
            run_ddl(
                self.mongo(),
                &self.mongo().client.database(target),
                doc! {"drop": from_coll},
                "drop",
            )
            .await?;
            self.summary.notes.push(format!(
                "{from} was renamed to {to}, outside the restored database: it is dropped"
            ));
            self.count("drop");
            return Ok(());
        };
        let drop_target = !matches!(o.get("dropTarget"), None | Some(Bson::Boolean(false)));
        let c = doc! {
            "renameCollection": format!("{target}.{from_coll}"),
            "to": format!("{to_target}.{to_coll}"),
            "dropTarget": drop_target,
        };
        let admin = self.mongo().client.database("admin");
        match admin.run_command(c.clone()).await {
            Ok(_) => {}
            Err(e) if matches!(e.kind.as_ref(), DriverKind::Command(x) if x.code == 26) => {}
            // Applied again over a newer state: the target exists because this rename already
            // happened. Renaming over it, then replaying what follows, converges.
            Err(e) if matches!(e.kind.as_ref(), DriverKind::Command(x) if x.code == 48) => {
                let mut again = c;
                again.insert("dropTarget", true);
                run_ddl(self.mongo(), &admin, again, "renameCollection").await?;
            }
            Err(e) => return Err(self.mongo().error(e, "replay renameCollection")),
        }
        self.count("renameCollection");
        Ok(())
    }

    async fn apply_ops(&mut self, entry: &Document, o: &Document) -> Result<()> {
        let inner: Vec<Document> = o
            .get_array("applyOps")
            .map(|a| a.iter().filter_map(|x| x.as_document().cloned()).collect())
            .unwrap_or_default();
        let key = txn_key(entry);
        let partial = o.get_bool("partialTxn").unwrap_or(false)
            || entry.get_bool("partialTxn").unwrap_or(false);
        let prepare =
            o.get_bool("prepare").unwrap_or(false) || entry.get_bool("prepare").unwrap_or(false);
        let has_txn = entry.contains_key("lsid") && entry.contains_key("txnNumber");
        if has_txn && (partial || prepare) {
            self.txns.entry(key).or_default().extend(inner);
            return Ok(());
        }
        let mut ops = if has_txn {
            self.txns.remove(&key).unwrap_or_default()
        } else {
            Vec::new()
        };
        ops.extend(inner);
        for op in ops {
            Box::pin(self.apply_one(&op)).await?;
        }
        self.flush().await?;
        if has_txn {
            self.summary.transactions_committed += 1;
        }
        self.count("applyOps");
        Ok(())
    }

    async fn create_indexes(&mut self, db: &str, coll: &str, specs: Vec<Document>) -> Result<()> {
        if specs.is_empty() {
            return Ok(());
        }
        let specs: Vec<Document> = specs
            .iter()
            .map(crate::mongo::metadata::creatable_index_spec)
            .collect();
        let command =
            doc! {"createIndexes": coll, "indexes": specs, "ignoreUnknownIndexOptions": true};
        let mongo = self.mongo();
        run_ddl(mongo, &mongo.client.database(db), command, "createIndexes").await
    }
}

/// `create` as the entry logged it, for collection `coll` (a view's pipeline under its command name).
fn create_command(o: &Document, coll: &str) -> Document {
    let mut c = doc! {"create": coll};
    for (k, v) in o {
        match k.as_str() {
            "create" | "idIndex" => {}
            "viewPipeline" => {
                c.insert("pipeline", v.clone());
            }
            _ => {
                c.insert(k.clone(), v.clone());
            }
        }
    }
    c
}

/// The index specs of a `createIndexes` (one spec inline, or a list) or `commitIndexBuild` entry.
fn index_specs(o: &Document, name: &str) -> Vec<Document> {
    match o.get_array("indexes") {
        Ok(list) => list
            .iter()
            .filter_map(|s| s.as_document().cloned())
            .collect(),
        Err(_) if name == "createIndexes" => {
            let mut s = o.clone();
            s.remove("createIndexes");
            vec![s]
        }
        Err(_) => Vec::new(),
    }
}

fn drop_indexes_command(o: &Document, coll: &str) -> Document {
    let index = o.get("index").cloned().unwrap_or(Bson::String("*".into()));
    doc! {"dropIndexes": coll, "index": index}
}

/// Whether collection `db.coll` has a unique index besides `_id` (none when it does not exist).
async fn has_unique_index(mongo: &Mongo, db: &str, coll: &str) -> Result<bool> {
    use futures::TryStreamExt;
    let doing = format!("list the indexes of {db}.{coll}");
    let cursor = match mongo
        .client
        .database(db)
        .run_cursor_command(doc! {"listIndexes": coll})
        .await
    {
        Ok(c) => c,
        Err(e) if matches!(e.kind.as_ref(), DriverKind::Command(c) if c.code == 26) => {
            return Ok(false)
        }
        Err(e) => return Err(mongo.error(e, &doing)),
    };
    let specs: Vec<Document> = cursor
        .try_collect()
        .await
        .map_err(|e| mongo.error(e, &doing))?;
    let unique = |s: &Document| match s.get("unique") {
        Some(Bson::Boolean(b)) => *b,
        Some(Bson::Int32(n)) => *n != 0,
        Some(Bson::Int64(n)) => *n != 0,
        Some(Bson::Double(n)) => *n != 0.0,
        _ => false,
    };
    Ok(specs
        .iter()
        .any(|s| s.get_str("name").ok() != Some("_id_") && unique(s)))
}

/// `<prefix>_<db>`, kept under MongoDB's 63-byte database name limit.
pub fn prefixed_name(prefix: &str, db: &str) -> String {
    let mut name = format!("{prefix}_{db}");
    while name.len() > 63 {
        name.pop();
    }
    name
}

fn txn_key(entry: &Document) -> String {
    format!(
        "{:?}/{:?}",
        entry.get("lsid").cloned().unwrap_or(Bson::Null),
        entry.get("txnNumber").cloned().unwrap_or(Bson::Null)
    )
}

/// A DDL command; "already done" answers (namespace missing or existing, index missing or
/// existing) are success: the entry was applied before.
async fn run_ddl(
    mongo: &Mongo,
    db: &mongodb::Database,
    command: Document,
    name: &str,
) -> Result<()> {
    match db.run_command(command).await {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind.as_ref(), DriverKind::Command(c) if ALREADY_DONE.contains(&c.code)) => {
            Ok(())
        }
        Err(e) => Err(mongo.error(e, &format!("replay {name} on {}", db.name()))),
    }
}
