//! What a dump directory in mongodump's layout holds: its databases (one folder each) and, in each,
//! its collections (`<name>.bson` with `<name>.metadata.json`, names escaped or truncated as
//! mongodump writes them); files that are not part of a dump are listed, never restored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::metadata::Metadata;
use super::names;
use crate::error::{Error, ErrorKind, Result};

/// One collection found in a dump directory.
#[derive(Debug)]
pub struct DumpedCollection {
    pub name: String,
    pub bson: Option<PathBuf>,
    pub metadata: Metadata,
}

/// Groups the files of a dump directory by collection.
pub fn scan(dir: &Path) -> Result<(Vec<DumpedCollection>, Vec<String>)> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::new(
                ErrorKind::Io,
                format!("no dump to restore at {}", dir.display()),
            )
        } else {
            Error::io("read directory", dir, e)
        }
    })?;
    let mut stems: BTreeMap<String, (Option<PathBuf>, Option<PathBuf>)> = BTreeMap::new();
    let mut ignored = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !path.is_file() {
            ignored.push(file_name);
        } else if let Some(stem) = file_name.strip_suffix(".metadata.json") {
            stems.entry(stem.to_string()).or_default().1 = Some(path);
        } else if let Some(stem) = file_name.strip_suffix(".bson") {
            stems.entry(stem.to_string()).or_default().0 = Some(path);
        } else {
            ignored.push(file_name);
        }
    }
    let mut out = Vec::new();
    for (stem, (bson, meta)) in stems {
        let metadata = match &meta {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| Error::io("read", p, e))?;
                Metadata::from_json(&text, p)?
            }
            None => Metadata::default(),
        };
        let name = match collection_name(&stem, &metadata) {
            Ok(name) => name,
            Err(why) => {
                ignored.push(why);
                continue;
            }
        };
        out.push(DumpedCollection {
            name,
            bson,
            metadata,
        });
    }
    Ok((out, ignored))
}

/// The collection a dumped `<stem>.bson` restores into: the name its metadata gives, else the
/// stem unescaped. `Err` says why it is not restored (listed, never silently dropped).
pub fn collection_name(stem: &str, metadata: &Metadata) -> std::result::Result<String, String> {
    let name = match (&metadata.collection_name, names::is_truncated_stem(stem)) {
        (Some(n), _) => n.clone(),
        (None, false) => names::query_unescape(stem).unwrap_or_else(|| stem.to_string()),
        (None, true) => {
            return Err(format!(
                "{stem}.bson (a truncated long name without metadata)"
            ))
        }
    };
    if name.starts_with("system.") && name != "system.js" {
        return Err(format!("{stem}.bson (system collection)"));
    }
    Ok(name)
}

/// The namespaces `db.coll` a dump root holds (its database `db_name`, or every one when empty),
/// in the order a restore takes them.
pub fn dumped_namespaces(root: &Path, db_name: &str) -> Result<Vec<String>> {
    let dbs = match db_name.is_empty() {
        true => database_dirs(root)?,
        false => vec![db_name.to_string()],
    };
    let mut out = Vec::new();
    for db in dbs {
        let dir = root.join(&db);
        if dir.is_dir() {
            out.extend(
                scan(&dir)?
                    .0
                    .into_iter()
                    .map(|c| format!("{db}.{}", c.name)),
            );
        }
    }
    Ok(out)
}

/// The database directories of a dump root, sorted.
pub fn database_dirs(root: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(root).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::new(ErrorKind::Io, format!("no backup at {}", root.display()))
        } else {
            Error::io("read directory", root, e)
        }
    })?;
    let mut dbs: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dbs.sort();
    Ok(dbs)
}
