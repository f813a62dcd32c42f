//! What the bucket holds, grouped the way operators think of it: incremental cycles (a full dump
//! plus increments under `<cycle>/`) and full-mode backups (`mongodb_backup_titan_<time>.tar.gz`),
//! each with its manifest when one was written. `list`, `verify` and `prune` read this.

use std::collections::BTreeMap;

use serde::Serialize;

use super::backup_full::FULL_PREFIX;
use crate::error::Result;
use crate::manifest::{ArchiveKind, Manifest, Position, FILE_NAME as MANIFEST};
use crate::storage::{ObjectInfo, Storage};

/// One incremental cycle in the bucket.
#[derive(Debug, Clone, Serialize)]
pub struct Cycle {
    pub name: String,
    /// Local time the cycle started, from its name.
    pub started: Option<String>,
    /// The full dump is stored and every archive the manifest names is present.
    pub complete: bool,
    pub has_manifest: bool,
    pub full: Option<Archive>,
    pub increments: Vec<Archive>,
    pub total_bytes: u64,
    /// The oplog range the cycle restores to: from the dump's start to the last increment's end.
    pub covers_from: Option<String>,
    pub covers_to: Option<String>,
    /// Archives the manifest names that the bucket lacks.
    pub missing: Vec<String>,
    #[serde(skip)]
    pub manifest: Option<Manifest>,
}

/// One archive of a cycle or a full-mode backup.
#[derive(Debug, Clone, Serialize)]
pub struct Archive {
    pub key: String,
    pub size: u64,
    /// Local time from the name (`oplog_<YYYYmmddHHMMSS>`, `..._<YYYYmmddHHMM>`).
    pub created: Option<String>,
    /// From the manifest, when it records this archive.
    pub entries: Option<u64>,
    pub oplog_from: Option<String>,
    pub oplog_to: Option<String>,
    pub documents: Option<u64>,
}

/// A full-mode backup.
#[derive(Debug, Clone, Serialize)]
pub struct FullBackup {
    pub name: String,
    pub has_manifest: bool,
    pub archive: Archive,
    #[serde(skip)]
    pub manifest: Option<Manifest>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Catalog {
    pub cycles: Vec<Cycle>,
    pub full_backups: Vec<FullBackup>,
}

/// `list`: the configured bucket's catalog, every manifest read.
pub async fn list(settings: &crate::config::Settings) -> Result<Catalog> {
    let storage = super::open_source_storage(settings, "list").await?;
    read(storage.as_ref(), &settings.cycle_prefix, &|_| true).await
}

/// Lists the cycles' and full backups' keys (by their name prefixes: other objects in a shared
/// bucket are not listed) and reads the manifests of the names `wanted` accepts.
pub async fn read(
    storage: &dyn Storage,
    cycle_prefix: &str,
    wanted: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Catalog> {
    let mut objects = storage.list(cycle_prefix).await?;
    if !FULL_PREFIX.starts_with(cycle_prefix) {
        objects.extend(storage.list(FULL_PREFIX).await?);
    }
    let mut by_cycle: BTreeMap<String, Vec<&ObjectInfo>> = BTreeMap::new();
    let mut catalog = Catalog::default();
    for o in &objects {
        if let Some((cycle, _)) = o.key.split_once('/') {
            if cycle.starts_with(cycle_prefix) {
                by_cycle.entry(cycle.to_string()).or_default().push(o);
            }
        } else if o.key.starts_with(FULL_PREFIX) && o.key.ends_with(".tar.gz") {
            let name = o.key.trim_end_matches(".tar.gz").to_string();
            let manifest = match wanted(&name) {
                true => read_manifest(storage, &full_manifest_key(&name)).await?,
                false => None,
            };
            let mut archive = archive_of(o, manifest.as_ref());
            archive.created = name_time(&name, FULL_PREFIX);
            catalog.full_backups.push(FullBackup {
                name,
                has_manifest: manifest.is_some(),
                archive,
                manifest,
            });
        }
    }
    for (name, objects) in by_cycle {
        let manifest = match wanted(&name) {
            true => read_manifest(storage, &cycle_manifest_key(&name)).await?,
            false => None,
        };
        catalog
            .cycles
            .push(cycle_of(&name, cycle_prefix, &objects, manifest));
    }
    Ok(catalog)
}

pub fn cycle_manifest_key(cycle: &str) -> String {
    format!("{cycle}/{MANIFEST}")
}

pub fn full_manifest_key(name: &str) -> String {
    format!("{name}.manifest.json")
}

pub async fn read_manifest(storage: &dyn Storage, key: &str) -> Result<Option<Manifest>> {
    match storage.read(key).await? {
        Some(bytes) => Ok(Some(Manifest::parse(&bytes, key)?)),
        None => Ok(None),
    }
}

fn cycle_of(
    name: &str,
    prefix: &str,
    objects: &[&ObjectInfo],
    manifest: Option<Manifest>,
) -> Cycle {
    let full_key = format!("{name}/full_backup.tar.gz");
    let full = objects
        .iter()
        .find(|o| o.key == full_key)
        .map(|o| archive_of(o, manifest.as_ref()));
    let mut increments: Vec<Archive> = objects
        .iter()
        .filter(|o| o.key.contains("/inc_backup/") && o.key.ends_with(".tar.gz"))
        .map(|o| {
            let mut a = archive_of(o, manifest.as_ref());
            let file = o.key.rsplit('/').next().unwrap_or_default();
            a.created = name_time(file.trim_end_matches(".tar.gz"), "oplog_");
            a
        })
        .collect();
    increments.sort_by(|a, b| a.key.cmp(&b.key));
    let present: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
    let missing: Vec<String> = manifest
        .iter()
        .flat_map(|m| m.archives.iter())
        .filter(|a| !present.contains(&a.key.as_str()))
        .map(|a| a.key.clone())
        .collect();
    let recorded_end = manifest.as_ref().and_then(|m| {
        m.archives
            .iter()
            .filter_map(|a| a.oplog_to.or(a.oplog_start))
            .max_by_key(|p| (p.t, p.i))
    });
    let covers_from = manifest
        .as_ref()
        .and_then(|m| m.full().and_then(|f| f.oplog_start))
        .map(show_position)
        .or_else(|| name_time(name, prefix));
    let covers_to = recorded_end
        .map(show_position)
        .or_else(|| increments.last().and_then(|i| i.created.clone()))
        .or_else(|| covers_from.clone());
    Cycle {
        name: name.to_string(),
        started: name_time(name, prefix),
        complete: full.is_some() && missing.is_empty(),
        has_manifest: manifest.is_some(),
        full,
        increments,
        total_bytes: objects.iter().map(|o| o.size).sum(),
        covers_from,
        covers_to,
        missing,
        manifest,
    }
}

fn archive_of(o: &ObjectInfo, manifest: Option<&Manifest>) -> Archive {
    let entry = manifest.and_then(|m| m.archives.iter().find(|a| a.key == o.key));
    Archive {
        key: o.key.clone(),
        size: o.size,
        created: None,
        entries: entry.and_then(|e| e.entries),
        oplog_from: entry.and_then(|e| e.oplog_from).map(show_position),
        oplog_to: entry.and_then(|e| e.oplog_to).map(show_position),
        documents: entry
            .filter(|e| e.kind == ArchiveKind::Full)
            .map(|e| e.collections.values().map(|c| c.documents).sum()),
    }
}

/// `1448361000:1` as `2015-11-24 18:30:00 (1448361000:1)`, local time.
pub fn show_position(p: Position) -> String {
    let time = chrono::DateTime::from_timestamp(i64::from(p.t), 0)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default();
    format!("{time} ({}:{})", p.t, p.i)
}

/// The local time in a name `<prefix><YYYYmmddHHMM[SS]>`.
pub fn name_time(name: &str, prefix: &str) -> Option<String> {
    let digits = name.strip_prefix(prefix)?;
    let padded = match digits.len() {
        14 => digits.to_string(),
        12 => format!("{digits}00"),
        _ => return None,
    };
    chrono::NaiveDateTime::parse_from_str(&padded, "%Y%m%d%H%M%S")
        .ok()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_from_names() {
        assert_eq!(
            name_time("mongodb_backup_titan_201512221438", FULL_PREFIX).as_deref(),
            Some("2015-12-22 14:38:00")
        );
        assert_eq!(
            name_time("oplog_20151124141133", "oplog_").as_deref(),
            Some("2015-11-24 14:11:33")
        );
        assert_eq!(name_time("oplog_x", "oplog_"), None);
    }
}
