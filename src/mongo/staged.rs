//! A staged restore: the collections of a dump that arrives as a stream (an archive still
//! downloading) are written, with their indexes, where they cannot harm what the target database
//! holds until the whole archive has been proven (size, CRC64, the codec's own checks): a
//! collection the target does not have yet is written under its own name, one it has (data a
//! `--drop` would replace, or documents a restore over an earlier one merges into) into a
//! temporary collection that `commit` renames over it. An archive refused at its end costs what
//! this restore created (`discard`), never the data already there.
//!
//! Renaming is a metadata change on mongod; secantusdb copies the collection (as long as about
//! 0.8× its insert), which is why only collections that exist already are staged aside.

use std::time::Instant;

use mongodb::bson::{doc, Document, RawDocumentBuf};
use tokio::sync::mpsc;

use super::connect::Mongo;
use super::dump_dir::DumpedCollection;
use super::metadata::Metadata;
use super::restore::{
    build_indexes, create_collection, drop_others, insert_documents, replace_documents,
    restore_collection, CollectionRestore, DatabaseRestore, Documents, RestoreOptions,
    LEGACY_OPTIONS,
};
use crate::error::Result;

/// Names of the temporaries; a restore killed mid-way leaves them, the next one into the same
/// database drops them (and `--drop` never counts them as the backup's).
pub const TEMP_PREFIX: &str = "mongo_oss_backup.restoring.";

/// One collection of the stream: where it goes and its documents as they arrive.
pub struct Incoming {
    pub db: String,
    pub name: String,
    pub metadata: Metadata,
    pub documents: Documents,
}

/// The stream's collections that are not staged but restored directly at the commit, read from a
/// spooled file: views (no documents; `viewOn` names the target), `system.*` and time-series
/// collections (neither can be renamed into place), and collections created with options
/// (capped, collation, validator…): secantusdb forgets a collection's options when it renames
/// it (mongod keeps them).
pub fn restored_at_commit(name: &str, metadata: &Metadata) -> bool {
    metadata.is_view()
        || name.starts_with("system.")
        || metadata.kind.as_deref() == Some("timeseries")
        || metadata
            .options
            .keys()
            .any(|k| !LEGACY_OPTIONS.contains(&k.as_str()))
}

struct StagedCollection {
    db: String,
    /// Where the documents went: a temporary, or the target itself (`direct`).
    temp: String,
    /// The target did not exist: written in place, dropped again if the archive is refused.
    direct: bool,
    metadata: Metadata,
    result: CollectionRestore,
    placed: bool,
}

#[derive(Default)]
pub struct Staging {
    staged: Vec<StagedCollection>,
    /// Set to call the restore off: `receive` stops at its next batch.
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Target databases whose leftover temporaries were dropped, in the order first met.
    databases: Vec<String>,
}

impl Staging {
    /// Writes each incoming collection into a temporary, one after another, until the sender
    /// hangs up. On an error, what was staged so far is still known to `discard`.
    pub async fn receive(
        &mut self,
        mongo: &Mongo,
        mut incoming: mpsc::Receiver<Incoming>,
        opts: &RestoreOptions,
    ) -> Result<()> {
        while let Some(mut c) = incoming.recv().await {
            if let Documents::Stream(_, stop) = &mut c.documents {
                *stop = Some(self.stop.clone());
            }
            self.enter(mongo, &c.db).await?;
            let direct = !exists(mongo, &c.db, &c.name).await?;
            let temp = match direct {
                true => c.name.clone(),
                false => format!("{TEMP_PREFIX}{}", self.staged.len()),
            };
            // Known before it exists: `discard` drops it whatever fails next.
            self.staged.push(StagedCollection {
                db: c.db.clone(),
                temp: temp.clone(),
                direct,
                metadata: c.metadata,
                result: CollectionRestore {
                    collection: c.name.clone(),
                    ..Default::default()
                },
                placed: false,
            });
            let s = self.staged.last_mut().expect("just pushed");
            create_collection(mongo, &s.db, &temp, &s.metadata.options).await?;
            let shown = format!("{}.{}", c.db, c.name);
            insert_documents(
                mongo,
                &s.db,
                &temp,
                &shown,
                &mut c.documents,
                opts,
                &mut s.result,
            )
            .await?;
            build_indexes(mongo, &s.db, &temp, &s.metadata.indexes, &mut s.result).await?;
            crate::hooks::crash_point("restore_staged");
        }
        Ok(())
    }

    /// What calls the restore off when set: `receive` stops at its next batch, with an error.
    pub fn stopper(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.stop.clone()
    }

    /// The first time a target database is met: temporaries an interrupted restore left go.
    async fn enter(&mut self, mongo: &Mongo, db: &str) -> Result<()> {
        if self.databases.iter().any(|d| d == db) {
            return Ok(());
        }
        self.databases.push(db.to_string());
        let names = mongo.collection_names(db).await?;
        for name in names.iter().filter(|n| n.starts_with(TEMP_PREFIX)) {
            log::warn!("dropping {db}.{name}: left by an interrupted restore");
            mongo.drop_collection(db, name).await?;
        }
        Ok(())
    }

    /// Drops what was written and not put in place (the archive was refused, or a step failed):
    /// the temporaries, and the collections created under their own names.
    pub async fn discard(self, mongo: &Mongo) {
        for s in self.staged.iter().filter(|s| !s.placed) {
            if let Err(e) = mongo.drop_collection(&s.db, &s.temp).await {
                log::warn!("could not drop {}.{}: {e}", s.db, s.temp);
            }
        }
    }

    /// Puts the staged collections in place, database by database (`databases` adds those the
    /// dump holds without a staged collection: an empty database, only views), then restores the
    /// collections `restored_at_commit` from their files, views last. With `drop_existing`, each
    /// target database ends up holding exactly the backup's collections.
    pub async fn commit(
        &mut self,
        mongo: &Mongo,
        databases: &[String],
        at_commit: &[(String, DumpedCollection)],
        opts: &RestoreOptions,
    ) -> Result<Vec<DatabaseRestore>> {
        let mut order: Vec<String> = self.databases.clone();
        for db in databases.iter().chain(at_commit.iter().map(|(db, _)| db)) {
            if !order.contains(db) {
                order.push(db.clone());
            }
        }
        let mut reports = Vec::new();
        for db in order {
            let started = Instant::now();
            let mut report = DatabaseRestore {
                database: db.clone(),
                ..Default::default()
            };
            if opts.drop_existing {
                let keep: Vec<&str> = self
                    .staged
                    .iter()
                    .filter(|s| s.db == db)
                    .map(|s| s.result.collection.as_str())
                    .chain(
                        at_commit
                            .iter()
                            .filter(|(d, _)| *d == db)
                            .map(|(_, c)| c.name.as_str()),
                    )
                    .collect();
                drop_others(mongo, &db, &keep).await?;
            }
            for s in self.staged.iter_mut().filter(|s| s.db == db) {
                place(mongo, s, opts).await?;
                report.collections.push(s.result.clone());
            }
            let mut direct: Vec<&DumpedCollection> = at_commit
                .iter()
                .filter(|(d, _)| *d == db)
                .map(|(_, c)| c)
                .collect();
            direct.sort_by_key(|c| c.metadata.is_view());
            for c in direct {
                report
                    .collections
                    .push(restore_collection(mongo, &db, &c.name, c, opts).await?);
            }
            report.log(started);
            reports.push(report);
        }
        Ok(reports)
    }
}

/// Renames a temporary over its target, or, when the target holds documents and the restore
/// does not drop, writes the temporary's documents into it by `_id` (a restore run again over an
/// earlier one) and drops the temporary.
async fn place(mongo: &Mongo, s: &mut StagedCollection, opts: &RestoreOptions) -> Result<()> {
    if s.direct {
        s.placed = true;
        return Ok(());
    }
    let name = s.result.collection.clone();
    let present = match opts.drop_existing || !exists(mongo, &s.db, &name).await? {
        true => 0,
        false => {
            let doing = format!("count the documents of {}.{name}", s.db);
            mongo
                .client
                .database(&s.db)
                .collection::<Document>(&name)
                .estimated_document_count()
                .await
                .map_err(|e| mongo.error(e, &doing))?
        }
    };
    if present == 0 {
        let command = doc! {
            "renameCollection": format!("{}.{}", s.db, s.temp),
            "to": format!("{}.{name}", s.db),
            "dropTarget": true,
        };
        let doing = format!("rename the restored {}.{name} into place", s.db);
        mongo
            .client
            .database("admin")
            .run_command(command)
            .await
            .map_err(|e| mongo.error(e, &doing))?;
        s.placed = true;
        return Ok(());
    }
    let mut merged = CollectionRestore {
        collection: name.clone(),
        failed: s.result.failed,
        examples: s.result.examples.clone(),
        ..Default::default()
    };
    create_collection(mongo, &s.db, &name, &s.metadata.options).await?;
    let ns = format!("{}.{}", s.db, s.temp);
    let cursor = mongo
        .client
        .database(&s.db)
        .collection::<RawDocumentBuf>(&s.temp)
        .find(doc! {})
        .await
        .map_err(|e| mongo.error(e, &format!("read {ns}")))?;
    let mut source = Documents::Cursor(Box::new(cursor), ns);
    replace_documents(mongo, &s.db, &name, &mut source, opts, &mut merged).await?;
    build_indexes(mongo, &s.db, &name, &s.metadata.indexes, &mut merged).await?;
    mongo.drop_collection(&s.db, &s.temp).await?;
    s.placed = true;
    s.result = merged;
    Ok(())
}

async fn exists(mongo: &Mongo, db: &str, name: &str) -> Result<bool> {
    Ok(mongo.collection_names(db).await?.iter().any(|n| n == name))
}
