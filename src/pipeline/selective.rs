//! Selective and renamed restores (`--ns-include`, `--ns-exclude`, `--ns-from`/`--ns-to`): which
//! collections come back, under which names, and the proof that nothing else is touched.
//!
//! The selection is judged on the names collections have at the point restored: the oplog is
//! first followed without writing (`scan_files`), so a collection renamed or rebuilt (`$out`:
//! a temporary collection renamed over the target) after the dump comes back as it was at that
//! point, and one renamed out of the selection and back keeps its history. Every selected
//! collection gets one home (its target namespace) that the dump and the replay write into; a
//! home that already holds documents is refused unless `--drop`, which empties only the homes.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use futures::TryStreamExt;
use mongodb::bson::{doc, Document};

use crate::error::{Error, ErrorKind, Result};
use crate::manifest::Manifest;
use crate::mongo::replay::engine::{ReplayOptions, Routes};
use crate::mongo::replay::{scan_files, OplogFile};
use crate::mongo::restore::dumped_namespaces;
use crate::mongo::Mongo;
use crate::namespace::{split, Lineage, Selection};
use crate::position::Position;

/// The `--ns-*` options and `--target-db`, as a restore request carries them.
#[derive(Debug, Clone, Default)]
pub struct NsOptions {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub from: Vec<String>,
    pub to: Vec<String>,
}

impl NsOptions {
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty() && self.from.is_empty()
    }

    pub fn selection(&self) -> Result<Selection> {
        Selection::new(&self.include, &self.exclude, &self.from, &self.to)
    }
}

/// One collection a selective restore brings back.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SelectedCollection {
    /// Its name at the point restored.
    pub source: String,
    pub target: String,
    /// Its name in the dump, when the dump holds it (else it was created after the dump).
    pub dumped_as: Option<String>,
    /// Documents the manifest records for it in the dump.
    pub dump_documents: Option<u64>,
    /// Oplog entries it receives in the replay, by the namespace the oplog names.
    pub entries: BTreeMap<String, u64>,
}

/// What a selective restore does.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SelectivePlan {
    pub collections: Vec<SelectedCollection>,
    /// Dumped collections to restore: `(name in the dump, target)`.
    #[serde(skip)]
    pub dump_pairs: Vec<(String, String)>,
    #[serde(skip)]
    pub routes: Routes,
}

impl SelectivePlan {
    /// The routes for the replay that writes.
    pub fn replay_routes(&self) -> Routes {
        Routes {
            scan_only: false,
            ..self.routes.clone()
        }
    }

    fn targets(&self) -> impl Iterator<Item = &str> {
        self.collections.iter().map(|c| c.target.as_str())
    }
}

/// Plans a selective restore of a dump (`dump_root`, absent for none) followed by `files`, up to
/// `until`. `db_name` limits it to one database (empty: every one); `target_db` moves the
/// collections that no `--ns-from` renames into that database.
pub async fn plan(
    ns: &NsOptions,
    target_db: Option<&str>,
    db_name: &str,
    dump_root: &Path,
    manifest: Option<&Manifest>,
    files: &[OplogFile],
    until: Option<Position>,
) -> Result<SelectivePlan> {
    let selection = ns.selection()?;
    let dumped = dumped_namespaces(dump_root, db_name)?;
    let lineage = Lineage::seeded(dumped.iter().map(String::as_str));
    let scan = scan_files(
        files,
        ReplayOptions {
            source_db: db_name.to_string(),
            until,
            routes: Some(Routes {
                lineage: lineage.clone(),
                homes: HashMap::new(),
                scan_only: true,
            }),
            ..Default::default()
        },
    )
    .await?;
    let in_scope = |ns: &str| db_name.is_empty() || split(ns).0 == db_name;
    let live: Vec<(&String, &u64)> = scan.live.iter().filter(|(ns, _)| in_scope(ns)).collect();
    let pairs = selection.targets(live.iter().map(|(ns, _)| ns.as_str()))?;
    let mut plan = SelectivePlan::default();
    let mut homes = HashMap::new();
    for (source, renamed) in pairs {
        let id = scan.live[&source];
        let target = match (renamed == source, target_db) {
            (true, Some(db)) => format!("{db}.{}", split(&source).1),
            _ => renamed,
        };
        if let Some(other) = plan.collections.iter().find(|c| c.target == target) {
            return Err(Error::config(format!(
                "{} and {source} would both be restored into {target}: make the --ns-to names differ",
                other.source
            )));
        }
        // The lineage numbers the dumped collections first, in their order.
        let dumped_as = usize::try_from(id)
            .ok()
            .and_then(|i| dumped.get(i))
            .cloned();
        if let Some(name) = &dumped_as {
            plan.dump_pairs.push((name.clone(), target.clone()));
        }
        let dump_documents = dumped_as.as_ref().and_then(|name| {
            manifest
                .and_then(|m| m.full())
                .and_then(|f| f.collections.get(name))
                .map(|c| c.documents)
        });
        plan.collections.push(SelectedCollection {
            source,
            target: target.clone(),
            dumped_as,
            dump_documents,
            entries: scan.entries.get(&id).cloned().unwrap_or_default(),
        });
        homes.insert(id, target);
    }
    if plan.collections.is_empty() {
        return Err(Error::config(format!(
            "the selection matches no collection{}: {} held at that point",
            until.map(|u| format!(" at {u}")).unwrap_or_default(),
            match live.len() {
                0 => "none is".to_string(),
                _ =>
                    live.iter()
                        .map(|(ns, _)| ns.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                        + " are",
            }
        )));
    }
    plan.routes = Routes {
        lineage,
        homes,
        scan_only: true,
    };
    Ok(plan)
}

/// Before any write: every target must be empty, or is emptied with `drop` (only the targets).
pub async fn prepare_targets(mongo: &Mongo, plan: &SelectivePlan, drop: bool) -> Result<()> {
    let mut occupied = Vec::new();
    for target in plan.targets() {
        let (db, coll) = split(target);
        let database = mongo.client.database(db);
        let doing = format!("look for {target}");
        let found = database
            .list_collections()
            .filter(doc! {"name": coll})
            .await
            .map_err(|e| mongo.error(e, &doing))?
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| mongo.error(e, &doing))?;
        let Some(spec) = found.first() else {
            continue;
        };
        let present = match spec.collection_type {
            mongodb::results::CollectionType::View => "a view".to_string(),
            _ => {
                let n = database
                    .collection::<Document>(coll)
                    .estimated_document_count()
                    .await
                    .map_err(|e| mongo.error(e, &format!("count the documents of {target}")))?;
                match n {
                    0 => continue,
                    n => crate::logging::count(n, "document"),
                }
            }
        };
        if !drop {
            occupied.push(format!("{target} ({present})"));
        }
    }
    if !occupied.is_empty() {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "refusing to restore over {}: it already holds data (--drop replaces it; --ns-to restores next to it)",
                occupied.join(", ")
            ),
        ));
    }
    if drop {
        for target in plan.targets() {
            let (db, coll) = split(target);
            log::info!("dropping {target} before restoring into it (--drop)");
            mongo.drop_collection(db, coll).await?;
        }
    }
    Ok(())
}
