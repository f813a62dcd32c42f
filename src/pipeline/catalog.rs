//! What the bucket holds, grouped the way operators think of it: incremental cycles (a full dump
//! plus increments under `<cycle>/`) and full-mode backups (`mongodb_backup_titan_<time>.tar.gz`),
//! each with its manifest when one was written. `list`, `verify` and `prune` read this.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::chain::{self, CycleFacts};
use crate::error::Result;
use crate::layout::{self, Key, FULL_PREFIX, INCREMENT_PREFIX};
use crate::manifest::{ArchiveKind, Manifest};
use crate::storage::{ObjectInfo, Storage};

/// One incremental cycle in the bucket.
#[derive(Debug, Clone, Serialize)]
pub struct Cycle {
    pub name: String,
    /// Local time the cycle started, from its name.
    pub started: Option<String>,
    /// The full dump is stored, every archive the manifest names is present with its recorded
    /// size, and the recorded increments chain from the dump's position without a gap.
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
    /// What stops the cycle from restoring: missing or truncated archives, a broken chain.
    pub problems: Vec<String>,
    /// Until when the bucket's retention policy (WORM) protects it from deletion (its newest
    /// object's protection), when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protected_until: Option<String>,
    /// Its newest object's last modification (seconds since the epoch).
    #[serde(skip)]
    pub newest_modified: Option<i64>,
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
    /// Sealed with age (`encrypt_recipients`): restoring it needs the identity.
    pub encrypted: bool,
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
    /// The bucket's retention policy (WORM), in days, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Whether that policy is locked for good (OSS `Locked`; an S3 default retention counts as
    /// locked) or still `InProgress` (its owner may remove it within a day of creating it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_locked: Option<bool>,
}

/// `list`: the configured bucket's catalog, every manifest read, and until when the bucket's
/// retention policy protects each cycle.
pub async fn list(settings: &crate::config::Settings) -> Result<Catalog> {
    let storage = super::open_source_storage(settings, "list").await?;
    let mut catalog = read(storage.as_ref(), &settings.cycle_prefix, &|_| true).await?;
    if let Some(retention) = storage.retention().await? {
        let now = chrono::Utc::now().timestamp();
        catalog.retention_days = Some(retention.days);
        catalog.retention_locked = Some(retention.locked);
        for cycle in &mut catalog.cycles {
            cycle.protected_until = cycle
                .newest_modified
                .map(|m| retention.protected_until(m))
                .filter(|until| *until > now)
                .map(crate::logging::utc_text);
        }
    }
    Ok(catalog)
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
        match Key::parse(&o.key, cycle_prefix) {
            Key::CycleFull { cycle }
            | Key::Increment { cycle, .. }
            | Key::CycleManifest { cycle }
            | Key::CycleOther { cycle }
                if layout::is_cycle_name(cycle, cycle_prefix) =>
            {
                by_cycle.entry(cycle.to_string()).or_default().push(o)
            }
            Key::FullBackup { name } => {
                let manifest = match wanted(name) {
                    true => read_manifest(storage, &layout::full_manifest_key(name)).await?,
                    false => None,
                };
                let mut archive = archive_of(o, manifest.as_ref());
                archive.created = layout::name_time_text(name, FULL_PREFIX);
                catalog.full_backups.push(FullBackup {
                    name: name.to_string(),
                    has_manifest: manifest.is_some(),
                    archive,
                    manifest,
                });
            }
            _ => {}
        }
    }
    for (name, objects) in by_cycle {
        let manifest = match wanted(&name) {
            true => read_manifest(storage, &layout::cycle_manifest_key(&name)).await?,
            false => None,
        };
        catalog
            .cycles
            .push(cycle_of(&name, cycle_prefix, &objects, manifest));
    }
    Ok(catalog)
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
    let full = objects
        .iter()
        .find(|o| matches!(Key::parse(&o.key, ""), Key::CycleFull { .. }))
        .map(|o| Archive {
            // The cycle is named by the time its full dump started.
            created: layout::name_time_text(name, prefix),
            ..archive_of(o, manifest.as_ref())
        });
    let mut increments: Vec<Archive> = objects
        .iter()
        .filter_map(|o| match Key::parse(&o.key, "") {
            Key::Increment { name, .. } => {
                let mut a = archive_of(o, manifest.as_ref());
                a.created = layout::name_time_text(name, INCREMENT_PREFIX);
                Some(a)
            }
            _ => None,
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
    let found: BTreeMap<String, Option<u64>> = objects
        .iter()
        .map(|o| (o.key.clone(), Some(o.size)))
        .collect();
    let chain = chain::check(&CycleFacts::gather(name, manifest.as_ref(), &found));
    let problems = chain.problems();
    let covers_from = chain
        .start
        .map(|p| p.label())
        .or_else(|| layout::name_time_text(name, prefix));
    let covers_to = chain
        .end
        .filter(|_| chain.links.iter().all(|l| l.to.is_some()))
        .map(|p| p.label())
        .or_else(|| increments.last().and_then(|i| i.created.clone()))
        .or_else(|| covers_from.clone());
    Cycle {
        name: name.to_string(),
        started: layout::name_time_text(name, prefix),
        complete: full.is_some() && missing.is_empty() && problems.is_empty(),
        has_manifest: manifest.is_some(),
        full,
        increments,
        total_bytes: objects.iter().map(|o| o.size).sum(),
        covers_from,
        covers_to,
        missing,
        problems,
        protected_until: None,
        newest_modified: objects.iter().filter_map(|o| o.last_modified).max(),
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
        oplog_from: entry.and_then(|e| e.oplog_from).map(|p| p.label()),
        oplog_to: entry.and_then(|e| e.oplog_to).map(|p| p.label()),
        documents: entry
            .filter(|e| e.kind == ArchiveKind::Full && !e.is_sealed())
            .map(|e| e.collections.values().map(|c| c.documents).sum()),
        encrypted: o.key.ends_with(crate::crypt::SUFFIX),
    }
}
