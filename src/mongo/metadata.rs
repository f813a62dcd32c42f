//! `<collection>.metadata.json` in mongodump's format (mongodump/metadata_dump.go): one line of
//! canonical extended JSON `{"options":…,"indexes":[…],"uuid":"<hex>","collectionName":…,"type":…}`
//! with `options`, `uuid` and `type` left out when empty. Reading also accepts older files (plain
//! JSON numbers, `ns` in index specs, no `collectionName`) and an empty file (no metadata).

use std::path::Path;

use mongodb::bson::{Bson, Document};

use crate::error::{Error, ErrorKind, Result};

/// Index options a user may pass to `createIndexes`: mongod's list of allowed index spec fields
/// (`kAllowedFieldNames`, src/mongo/db/catalog/index_key_validate.cpp) without `v` and `ns`, which
/// the target server decides. Specs as the oplog or a catalog logs them carry more (secantusdb's
/// `entryFormat` and `multikey`, mongod's internal flags), which createIndexes refuses (40415).
const INDEX_OPTIONS: &[&str] = &[
    "key",
    "name",
    "unique",
    "sparse",
    "partialFilterExpression",
    "expireAfterSeconds",
    "background",
    "hidden",
    "collation",
    "weights",
    "default_language",
    "language_override",
    "textIndexVersion",
    "2dsphereIndexVersion",
    "bits",
    "min",
    "max",
    "bucketSize",
    "wildcardProjection",
    "columnstoreProjection",
    "storageEngine",
    "prepareUnique",
    "clustered",
    "coarsestIndexedLevel",
    "finestIndexedLevel",
];

/// An index spec as dumped or logged, reduced to what `createIndexes` accepts from a user.
pub fn creatable_index_spec(spec: &Document) -> Document {
    let mut out = Document::new();
    for (k, v) in spec {
        if INDEX_OPTIONS.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        } else if k != "v" && k != "ns" {
            log::debug!("index option {k} left out (the server sets it itself)");
        }
    }
    out
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    pub options: Document,
    pub indexes: Vec<Document>,
    /// The source collection's UUID as 32 hex digits.
    pub uuid: Option<String>,
    pub collection_name: Option<String>,
    /// `collection`, `view` or `timeseries` as listCollections reported it.
    pub kind: Option<String>,
}

impl Metadata {
    pub fn is_view(&self) -> bool {
        self.kind.as_deref() == Some("view") || self.options.contains_key("viewOn")
    }

    /// The JSON text mongodump would write.
    pub fn to_json(&self) -> String {
        let mut doc = Document::new();
        if !self.options.is_empty() {
            doc.insert("options", self.options.clone());
        }
        doc.insert(
            "indexes",
            Bson::Array(self.indexes.iter().cloned().map(Bson::Document).collect()),
        );
        if let Some(uuid) = &self.uuid {
            doc.insert("uuid", uuid.clone());
        }
        doc.insert(
            "collectionName",
            self.collection_name.clone().unwrap_or_default(),
        );
        if let Some(kind) = &self.kind {
            doc.insert("type", kind.clone());
        }
        Bson::Document(doc).into_canonical_extjson().to_string()
    }

    /// Parses a metadata file's text; an empty text is "no metadata".
    pub fn from_json(text: &str, path: &Path) -> Result<Metadata> {
        if text.trim().is_empty() {
            return Ok(Metadata::default());
        }
        let bad = |why: String| {
            Error::new(
                ErrorKind::Archive,
                format!("{} is not valid mongodump metadata: {why}", path.display()),
            )
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let doc = match Bson::try_from(value).map_err(|e| bad(e.to_string()))? {
            Bson::Document(d) => d,
            _ => return Err(bad("not a JSON object".into())),
        };
        let options = match doc.get("options") {
            Some(Bson::Document(d)) => d.clone(),
            None | Some(Bson::Null) => Document::new(),
            Some(_) => return Err(bad("options is not an object".into())),
        };
        let indexes = match doc.get("indexes") {
            Some(Bson::Array(a)) => a
                .iter()
                .map(|i| match i {
                    Bson::Document(d) => Ok(d.clone()),
                    _ => Err(bad("an index is not an object".into())),
                })
                .collect::<Result<Vec<_>>>()?,
            None | Some(Bson::Null) => Vec::new(),
            Some(_) => return Err(bad("indexes is not an array".into())),
        };
        let text_field = |k: &str| {
            doc.get_str(k)
                .ok()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Ok(Metadata {
            options,
            indexes,
            uuid: text_field("uuid"),
            collection_name: text_field("collectionName"),
            kind: text_field("type"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    #[test]
    fn writes_mongodump_shape() {
        let m = Metadata {
            options: Document::new(),
            indexes: vec![
                doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"},
                doc! {"v": 2, "key": {"f": 1.0}, "name": "f_1"},
            ],
            uuid: Some("0679db720f4944de90ae27472664e94a".into()),
            collection_name: Some("foo".into()),
            kind: None,
        };
        // Byte-identical to mongo-tools' coll_with_index/test/foo.metadata.json.
        assert_eq!(
            m.to_json(),
            r#"{"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"},{"v":{"$numberInt":"2"},"key":{"f":{"$numberDouble":"1.0"}},"name":"f_1"}],"uuid":"0679db720f4944de90ae27472664e94a","collectionName":"foo"}"#
        );
        assert_eq!(
            Metadata::from_json(&m.to_json(), Path::new("x")).unwrap(),
            m
        );
    }

    #[test]
    fn reads_legacy_and_empty() {
        let legacy =
            r#"{"options":{},"indexes":[{"v":1,"key":{"_id":1},"name":"_id_","ns":"db1.c1"}]}"#;
        let m = Metadata::from_json(legacy, Path::new("c1.metadata.json")).unwrap();
        assert_eq!(m.indexes[0].get_str("ns").unwrap(), "db1.c1");
        assert_eq!(m.collection_name, None);
        assert_eq!(
            Metadata::from_json("", Path::new("e")).unwrap(),
            Metadata::default()
        );
        assert!(Metadata::from_json("[1]", Path::new("e")).is_err());
    }
}
