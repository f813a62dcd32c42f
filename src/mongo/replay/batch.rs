//! Writing one collection's pending CRUD entries. Each document's states are computed on the client
//! (updates applied to the document read back), then written as few commands as possible: one
//! `delete` and one `update` (whole-document replacements by `_id`, upsert) with each document's
//! final state, in the order of its last change.
//!
//! Two histories cannot be written that way:
//! - A unique secondary index sees the order of writes: two documents that exchange a value (A: k
//!   1→3, B: k 2→1, A: k 3→2) collide when only final states are written. When the collection has
//!   such an index and the batched write collides, the batch is written again in entry order: every
//!   document it touches goes back to its state before the batch (deleted, then its pre-image
//!   inserted: deletes cannot collide, and pre-images were consistent together), then each entry's
//!   state is written in turn, as the history itself did without collision.
//! - Field names starting with `$` (legal since MongoDB 5.0) are refused in a replacement document:
//!   such a document is deleted and inserted instead.

use std::collections::HashMap;

use mongodb::bson::{doc, Bson, Document};

use super::update;
use crate::error::{Error, ErrorKind, Result};
use crate::mongo::Mongo;

pub(super) enum Op {
    Put(Document),
    Update { o: Document, upsert: bool },
    Delete,
}

pub(super) struct Batch {
    pub db: String,
    pub coll: String,
    pub ops: Vec<(Bson, Op)>,
}

/// Which documents a batch touched and their state after each entry.
struct States {
    /// `(id, state after the entry)` in entry order.
    steps: Vec<(Bson, Option<Document>)>,
    /// State before the batch of every document read back.
    before: HashMap<Vec<u8>, Option<Document>>,
    missing_update_targets: u64,
}

fn key(id: &Bson) -> Vec<u8> {
    mongodb::bson::to_vec(&doc! {"_id": id.clone()}).unwrap_or_default()
}

/// Writes the batch; returns how many updates found no document to apply to (deleted later).
/// `unique`: the collection has a unique index besides `_id`.
pub(super) async fn write(mongo: &Mongo, batch: Batch, unique: bool) -> Result<u64> {
    let database = mongo.client.database(&batch.db);
    let doing = format!("replay into {}.{}", batch.db, batch.coll);
    let states = compute(mongo, &batch, unique, &doing).await?;
    // Final state per document, in the order of its last change.
    let mut last: HashMap<Vec<u8>, usize> = HashMap::new();
    for (i, (id, _)) in states.steps.iter().enumerate() {
        last.insert(key(id), i);
    }
    let finals = states
        .steps
        .iter()
        .enumerate()
        .filter(|(i, (id, _))| last.get(&key(id)) == Some(i))
        .map(|(_, (id, state))| (id, state));
    let mut deletes = Vec::new();
    let mut replaces = Vec::new();
    let mut reinserts: Vec<(&Bson, &Document)> = Vec::new();
    for (id, state) in finals {
        match state {
            None => deletes.push(doc! {"q": {"_id": id.clone()}, "limit": 1}),
            Some(d) if has_dollar_field(d) => reinserts.push((id, d)),
            Some(d) => {
                replaces.push(doc! {"q": {"_id": id.clone()}, "u": d.clone(), "upsert": true})
            }
        }
    }
    let mut collided = None;
    if !deletes.is_empty() {
        collided = collided.or(command(
            mongo,
            &database,
            doc! {"delete": &batch.coll, "deletes": deletes, "ordered": true},
            &doing,
        )
        .await?);
    }
    if collided.is_none() && !replaces.is_empty() {
        collided = command(
            mongo,
            &database,
            doc! {"update": &batch.coll, "updates": replaces, "ordered": true},
            &doing,
        )
        .await?;
    }
    if collided.is_none() && !reinserts.is_empty() {
        let ids: Vec<Bson> = reinserts.iter().map(|(id, _)| (*id).clone()).collect();
        let docs: Vec<Document> = reinserts.iter().map(|(_, d)| (*d).clone()).collect();
        collided = reinsert(mongo, &database, &batch.coll, ids, docs, &doing).await?;
    }
    match collided {
        None => {}
        Some(_) if unique => {
            log::debug!("{doing}: a unique index saw the batched order; writing in entry order");
            write_in_entry_order(mongo, &database, &batch.coll, &states, &doing).await?;
        }
        Some(first) => {
            return Err(Error::new(
                ErrorKind::Mongo,
                format!("{doing}: the server refused a write: {first}"),
            ))
        }
    }
    Ok(states.missing_update_targets)
}

/// Reads what the entries need (every touched document when `unique`, so that the batch can be
/// written again from its start) and computes each entry's resulting state.
async fn compute(mongo: &Mongo, batch: &Batch, unique: bool, doing: &str) -> Result<States> {
    let mut needed: Vec<Bson> = Vec::new();
    let mut seen: HashMap<Vec<u8>, ()> = HashMap::new();
    for (id, op) in &batch.ops {
        if seen.insert(key(id), ()).is_none() && (unique || matches!(op, Op::Update { .. })) {
            needed.push(id.clone());
        }
    }
    let mut before: HashMap<Vec<u8>, Option<Document>> = HashMap::new();
    if !needed.is_empty() {
        for id in &needed {
            before.insert(key(id), None);
        }
        let mut cursor = mongo
            .client
            .database(&batch.db)
            .collection::<Document>(&batch.coll)
            .find(doc! {"_id": {"$in": needed}})
            .await
            .map_err(|e| mongo.error(e, doing))?;
        while cursor.advance().await.map_err(|e| mongo.error(e, doing))? {
            let d = cursor
                .deserialize_current()
                .map_err(|e| mongo.error(e, doing))?;
            if let Some(id) = d.get("_id") {
                before.insert(key(id), Some(d.clone()));
            }
        }
    }
    let mut current = before.clone();
    let mut steps = Vec::with_capacity(batch.ops.len());
    let mut missing_update_targets = 0;
    for (id, op) in &batch.ops {
        let state = current.entry(key(id)).or_insert(None);
        match op {
            Op::Put(d) => *state = Some(d.clone()),
            Op::Delete => *state = None,
            Op::Update { o, upsert } => {
                let base = match (state.take(), upsert) {
                    (Some(d), _) => Some(d),
                    (None, true) => Some(doc! {"_id": id.clone()}),
                    (None, false) => None,
                };
                match base {
                    Some(d) => {
                        *state = Some(update::apply(&d, o).map_err(|why| {
                            Error::new(
                                ErrorKind::Mongo,
                                format!(
                                    "cannot apply an update to {}.{}: {why}",
                                    batch.db, batch.coll
                                ),
                            )
                        })?)
                    }
                    None => missing_update_targets += 1,
                }
            }
        }
        steps.push((id.clone(), state.clone()));
    }
    Ok(States {
        steps,
        before,
        missing_update_targets,
    })
}

/// The batch again, from its start, one entry at a time.
async fn write_in_entry_order(
    mongo: &Mongo,
    database: &mongodb::Database,
    coll: &str,
    states: &States,
    doing: &str,
) -> Result<()> {
    let refused = |what: String| Error::new(ErrorKind::Mongo, format!("{doing}: {what}"));
    let ids: Vec<Bson> = {
        let mut seen: HashMap<Vec<u8>, ()> = HashMap::new();
        states
            .steps
            .iter()
            .filter(|(id, _)| seen.insert(key(id), ()).is_none())
            .map(|(id, _)| id.clone())
            .collect()
    };
    if let Some(e) = delete_ids(mongo, database, coll, ids.clone(), doing).await? {
        return Err(refused(e));
    }
    let pre_images: Vec<Document> = ids
        .iter()
        .filter_map(|id| states.before.get(&key(id)).cloned().flatten())
        .collect();
    if !pre_images.is_empty() {
        if let Some(e) = command(
            mongo,
            database,
            doc! {"insert": coll, "documents": pre_images, "ordered": true},
            doing,
        )
        .await?
        {
            return Err(refused(format!(
                "the documents as they were before the batch collide: {e}"
            )));
        }
    }
    for (id, state) in &states.steps {
        let outcome = match state {
            None => {
                let deletes = vec![doc! {"q": {"_id": id.clone()}, "limit": 1}];
                command(
                    mongo,
                    database,
                    doc! {"delete": coll, "deletes": deletes},
                    doing,
                )
                .await?
            }
            Some(d) if has_dollar_field(d) => {
                reinsert(
                    mongo,
                    database,
                    coll,
                    vec![id.clone()],
                    vec![d.clone()],
                    doing,
                )
                .await?
            }
            Some(d) => {
                let updates = vec![doc! {"q": {"_id": id.clone()}, "u": d.clone(), "upsert": true}];
                command(
                    mongo,
                    database,
                    doc! {"update": coll, "updates": updates},
                    doing,
                )
                .await?
            }
        };
        if let Some(e) = outcome {
            return Err(refused(format!(
                "the server refused a write even in entry order: {e}"
            )));
        }
    }
    Ok(())
}

/// Documents with `$`-prefixed field names: deleted, then inserted as they are.
async fn reinsert(
    mongo: &Mongo,
    database: &mongodb::Database,
    coll: &str,
    ids: Vec<Bson>,
    docs: Vec<Document>,
    doing: &str,
) -> Result<Option<String>> {
    if let Some(e) = delete_ids(mongo, database, coll, ids, doing).await? {
        return Ok(Some(e));
    }
    command(
        mongo,
        database,
        doc! {"insert": coll, "documents": docs, "ordered": true},
        doing,
    )
    .await
}

/// Deletes documents by `_id`, in one command.
async fn delete_ids(
    mongo: &Mongo,
    database: &mongodb::Database,
    coll: &str,
    ids: Vec<Bson>,
    doing: &str,
) -> Result<Option<String>> {
    let deletes: Vec<Document> = ids
        .into_iter()
        .map(|id| doc! {"q": {"_id": id}, "limit": 1})
        .collect();
    command(
        mongo,
        database,
        doc! {"delete": coll, "deletes": deletes, "ordered": true},
        doing,
    )
    .await
}

/// Whether a document holds a field name starting with `$` at any depth.
fn has_dollar_field(d: &Document) -> bool {
    fn value(v: &Bson) -> bool {
        match v {
            Bson::Document(d) => has_dollar_field(d),
            Bson::Array(a) => a.iter().any(value),
            _ => false,
        }
    }
    d.iter().any(|(k, v)| k.starts_with('$') || value(v))
}

/// Runs a write command; a write error comes back as its first error's text (code included), any
/// other failure is an error.
async fn command(
    mongo: &Mongo,
    db: &mongodb::Database,
    command: Document,
    doing: &str,
) -> Result<Option<String>> {
    let reply = db
        .run_command(command)
        .await
        .map_err(|e| mongo.error(e, doing))?;
    Ok(reply
        .get_array("writeErrors")
        .ok()
        .and_then(|errors| errors.first())
        .and_then(Bson::as_document)
        .map(|e| {
            format!(
                "{} (code {})",
                e.get_str("errmsg").unwrap_or("?"),
                e.get_i32("code").unwrap_or(0)
            )
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_fields_at_any_depth() {
        assert!(!has_dollar_field(&doc! {"a": {"b": [1, {"c": 2}]}}));
        assert!(has_dollar_field(&doc! {"$a": 1}));
        assert!(has_dollar_field(&doc! {"a": [{"$b": 1}]}));
        assert!(has_dollar_field(&doc! {"a": {"x": {"$c": 1}}}));
    }
}
