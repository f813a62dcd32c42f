//! Retention (`keep_cycles`): deletes from the bucket the cycles older than the N newest. The
//! current cycle (state A's) is never deleted, whatever N is. Runs after each new cycle's full dump
//! is stored, and on demand (`prune`, with `--dry-run` to see what would go).

use serde::Serialize;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::storage::Storage;

#[derive(Debug, Clone, Serialize, Default)]
pub struct PruneReport {
    pub kept: Vec<String>,
    pub deleted: Vec<String>,
    pub objects_deleted: usize,
    pub dry_run: bool,
}

/// `prune`: keeps the `keep` newest cycles of the configured bucket and the installation's current
/// one (state A), deletes the others (or only says so, with `dry_run`).
pub async fn run(settings: &Settings, keep: usize, dry_run: bool) -> Result<PruneReport> {
    if keep == 0 {
        return Err(Error::config(
            "nothing to prune: keep_cycles is 0 (keep everything); pass --keep N",
        ));
    }
    let root = &settings.db_backup_root_path;
    let current: Option<crate::state::CycleInfo> =
        crate::state::read(&crate::state::state_a_path(root))?;
    let current = current.map(|c| c.last_circle_backup_dir_name);
    let storage = super::open_source_storage(settings, "prune").await?;
    let prefix = &settings.cycle_prefix;
    prune_cycles(storage.as_ref(), prefix, keep, current.as_deref(), dry_run).await
}

/// Keeps the `keep` newest cycles named `<prefix>…` (and `current`); deletes the others' objects.
pub async fn prune_cycles(
    storage: &dyn Storage,
    prefix: &str,
    keep: usize,
    current: Option<&str>,
    dry_run: bool,
) -> Result<PruneReport> {
    let objects = storage.list(prefix).await?;
    let mut cycles: Vec<String> = objects
        .iter()
        .filter_map(|o| o.key.split_once('/').map(|(c, _)| c.to_string()))
        .collect();
    cycles.sort();
    cycles.dedup();
    let cut = cycles.len().saturating_sub(keep);
    let mut report = PruneReport {
        dry_run,
        ..Default::default()
    };
    for (i, cycle) in cycles.iter().enumerate() {
        if i >= cut || Some(cycle.as_str()) == current {
            report.kept.push(cycle.clone());
            continue;
        }
        let keys: Vec<String> = objects
            .iter()
            .filter(|o| o.key.starts_with(&format!("{cycle}/")))
            .map(|o| o.key.clone())
            .collect();
        if !dry_run {
            storage.delete(&keys).await?;
            log::info!(
                "keep_cycles={keep}: deleted cycle {cycle} ({} objects) from {}",
                keys.len(),
                storage.describe()
            );
        }
        report.objects_deleted += keys.len();
        report.deleted.push(cycle.clone());
    }
    Ok(report)
}
