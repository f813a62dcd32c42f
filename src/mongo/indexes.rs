//! Building a dump's indexes on the restored collection: the specs of its metadata, made
//! creatable on today's servers (the target's namespace, legacy key values as mongorestore's
//! --convertLegacyIndexes converts them); those that still fail are reported, never dropped.

use mongodb::bson::{doc, Bson, Document};
use mongodb::error::ErrorKind as DriverKind;

use super::connect::{first_line, Mongo};
use super::restore::CollectionRestore;
use crate::error::Result;

/// Builds the metadata's indexes (all at once; one by one if that fails, to build all it can).
pub async fn build_indexes(
    mongo: &Mongo,
    db: &str,
    name: &str,
    specs: &[Document],
    result: &mut CollectionRestore,
) -> Result<()> {
    let specs: Vec<Document> = specs
        .iter()
        .filter(|s| s.get_str("name").ok() != Some("_id_"))
        .map(|s| {
            // The namespace is the target's, the server picks the index version (as mongorestore),
            // and server-internal fields are not a user's to pass.
            let mut s = super::metadata::creatable_index_spec(s);
            if let Ok(key) = s.get_document_mut("key") {
                convert_legacy_key(key);
            }
            s
        })
        .collect();
    if specs.is_empty() {
        return Ok(());
    }
    let database = mongo.client.database(db);
    let command = |indexes: Vec<Document>| {
        doc! {"createIndexes": name, "indexes": indexes, "ignoreUnknownIndexOptions": true}
    };
    if database.run_command(command(specs.clone())).await.is_ok() {
        result.indexes_built += specs.len();
        return Ok(());
    }
    for spec in specs {
        let index_name = spec.get_str("name").unwrap_or("?").to_string();
        match database.run_command(command(vec![spec])).await {
            Ok(_) => result.indexes_built += 1,
            Err(e) => match e.kind.as_ref() {
                DriverKind::Command(c) => result.index_failures.push(format!(
                    "{index_name}: {} (code {})",
                    first_line(&c.message),
                    c.code
                )),
                _ => {
                    return Err(mongo.error(e, &format!("build index {index_name} on {db}.{name}")))
                }
            },
        }
    }
    Ok(())
}

/// Key values old servers accepted and new ones refuse (0, "", non-numbers) become 1, as
/// mongorestore's --convertLegacyIndexes does; valid directions and index types are kept.
fn convert_legacy_key(key: &mut Document) {
    for (_, value) in key.iter_mut() {
        let legacy = match value {
            Bson::Int32(0) | Bson::Int64(0) => true,
            Bson::Double(d) => d.abs() < 1e-9,
            Bson::Decimal128(d) => decimal_is_zero(&d.to_string()),
            Bson::String(s) => s.is_empty(),
            Bson::Int32(_) | Bson::Int64(_) => false,
            _ => true,
        };
        if legacy {
            let negative = matches!(value, Bson::Double(d) if *d < 0.0);
            *value = Bson::Int32(if negative { -1 } else { 1 });
        }
    }
}

/// Whether a decimal's text (`-0`, `0.00`, `0E-6176`…) has no non-zero digit before its exponent.
fn decimal_is_zero(text: &str) -> bool {
    let mantissa = text.split(['E', 'e']).next().unwrap_or("");
    mantissa.chars().all(|c| !c.is_ascii_digit() || c == '0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_index_keys_become_valid() {
        let mut key =
            doc! {"a": 0, "b": -1, "c": "", "d": "2dsphere", "e": 0.0, "f": true, "g": 1.0};
        convert_legacy_key(&mut key);
        assert_eq!(
            key,
            doc! {"a": 1, "b": -1, "c": 1, "d": "2dsphere", "e": 1, "f": 1, "g": 1.0}
        );
        assert!(decimal_is_zero("-0") && decimal_is_zero("0E-6176") && !decimal_is_zero("-1"));
    }
}
