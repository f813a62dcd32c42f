//! Reading back what a database holds, to compare it with what a backup recorded: its views and,
//! per collection, the document count and the order-independent content hash the dump computed
//! (`manifest::CollectionDigest`).

use mongodb::bson::{doc, RawDocumentBuf};

use super::Mongo;
use crate::error::Result;
use crate::manifest::CollectionDigest;

/// The views of a database: restored as views, they hold no documents of their own.
pub async fn view_names(mongo: &Mongo, db: &str) -> Result<Vec<String>> {
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
pub async fn hash_collection(mongo: &Mongo, db: &str, name: &str) -> Result<CollectionDigest> {
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
