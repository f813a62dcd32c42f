//! Retention (`keep_cycles`): deletes from the bucket the cycles older than the N newest. The
//! current cycle (state A's) is never deleted, whatever N is. Runs after each new cycle's full dump
//! is stored, and on demand (`prune`, with `--dry-run` to see what would go). Only this
//! installation's cycles are candidates: names of its prefix followed by exactly a time, whose
//! manifest (when they have one) records this installation's database. Several installations can
//! share a bucket.

use std::collections::BTreeSet;

use serde::Serialize;

use super::catalog;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::layout;
use crate::storage::Storage;

#[derive(Debug, Clone, Serialize, Default)]
pub struct PruneReport {
    pub kept: Vec<String>,
    pub deleted: Vec<String>,
    /// Cycles due for deletion that the bucket's retention policy (WORM) still protects, with
    /// the time their protection ends: kept whole, deleted by a later prune.
    pub protected: Vec<(String, String)>,
    pub objects_deleted: usize,
    pub dry_run: bool,
}

/// The warning for a `keep_cycles` that keeps fewer days than the bucket's retention policy
/// protects each object: the older cycles cannot go before their protection ends.
pub fn keep_cycles_shorter_than_retention(
    settings: &Settings,
    retention_days: u32,
) -> Option<String> {
    let keep = settings.keep_cycles;
    let crate::config::Mode::Incremental { period_days } = settings.mode else {
        return None;
    };
    if keep == 0 {
        return None;
    }
    let kept = match period_days {
        0 => format!("{keep} cycles of one run each"),
        days if keep.saturating_mul(days) >= retention_days => return None,
        days => format!("about {} days of cycles", keep * days),
    };
    Some(format!(
        "keep_cycles={keep} keeps {kept}, but the bucket's retention policy protects every object for \
         {retention_days} days: older cycles stay (and are billed) until their protection ends, and \
         each backup says so"
    ))
}

/// `prune`: keeps the `keep` newest cycles of the configured bucket and the installation's current
/// one (state A), deletes the others (or only says so, with `dry_run`).
pub async fn run(settings: &Settings, keep: usize, dry_run: bool) -> Result<PruneReport> {
    if keep == 0 {
        return Err(Error::config(
            "nothing to prune: 0 means keep every cycle (keep_cycles = 0 or --keep 0); pass --keep N to keep the N newest",
        ));
    }
    let root = &settings.db_backup_root_path;
    let current: Option<crate::state::CycleInfo> =
        crate::state::read(&crate::state::state_a_path(root))?;
    let current = current.map(|c| c.last_circle_backup_dir_name);
    let storage = super::open_source_storage(settings, "prune").await?;
    prune_cycles(
        storage.as_ref(),
        settings,
        keep,
        current.as_deref(),
        dry_run,
    )
    .await
}

/// Keeps the `keep` newest cycles of this installation (and `current`); deletes the others' objects.
pub async fn prune_cycles(
    storage: &dyn Storage,
    settings: &Settings,
    keep: usize,
    current: Option<&str>,
    dry_run: bool,
) -> Result<PruneReport> {
    let prefix = &settings.cycle_prefix;
    let objects = storage.list(prefix).await?;
    let cycles: BTreeSet<&str> = objects
        .iter()
        .filter_map(|o| o.key.split_once('/').map(|(c, _)| c))
        .filter(|c| layout::is_cycle_name(c, prefix))
        .collect();
    let mut ours = Vec::new();
    for cycle in cycles {
        match catalog::read_manifest(storage, &layout::cycle_manifest_key(cycle)).await {
            Ok(Some(m)) if m.database != settings.db_name => {
                log::info!(
                    "prune: {cycle} belongs to another installation (database \"{}\"): left alone",
                    m.database
                );
            }
            _ => ours.push(cycle.to_string()),
        }
    }
    let cut = ours.len().saturating_sub(keep);
    let mut report = PruneReport {
        dry_run,
        ..Default::default()
    };
    let retention = match cut {
        0 => None,
        _ => storage.retention().await?,
    };
    let now = chrono::Utc::now().timestamp();
    for (i, cycle) in ours.iter().enumerate() {
        if i >= cut || Some(cycle.as_str()) == current {
            report.kept.push(cycle.clone());
            continue;
        }
        let cycle_objects: Vec<&crate::storage::ObjectInfo> = objects
            .iter()
            .filter(|o| o.key.starts_with(&layout::cycle_prefix_of(cycle)))
            .collect();
        // A cycle goes whole or not at all: while its newest object is protected, it stays.
        let until = retention.and_then(|r| {
            cycle_objects
                .iter()
                .filter_map(|o| o.last_modified)
                .max()
                .map(|m| r.protected_until(m))
                .filter(|until| *until > now)
        });
        if let Some(until) = until {
            let when = crate::logging::utc_text(until);
            log::info!(
                "prune: {cycle} is protected by the bucket's retention policy (WORM) until {when}: kept"
            );
            report.kept.push(cycle.clone());
            report.protected.push((cycle.clone(), when));
            continue;
        }
        let keys: Vec<String> = cycle_objects.iter().map(|o| o.key.clone()).collect();
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

#[cfg(test)]
mod tests {
    use super::keep_cycles_shorter_than_retention as warning;
    use std::path::Path;

    fn settings(keys: &str) -> crate::config::Settings {
        let text = format!(
            "db_host=h\ndb_name=a\ndb_backup_root_path=/tmp/b/\nis_upload_to_oss=0\n{keys}"
        );
        crate::config::parse(&text, Path::new("c.properties"), &|_| None)
            .unwrap()
            .settings
    }

    #[test]
    fn keep_cycles_against_the_retention_period() {
        let weekly = |keep: u32| {
            settings(&format!(
                "is_inc_backup=1\nfull_backup_period=7\nkeep_cycles={keep}\n"
            ))
        };
        // 4 weekly cycles = 28 days: under 30 days of protection, warned; 5 = 35 days: not.
        let w = warning(&weekly(4), 30).unwrap();
        assert!(
            w.contains("keep_cycles=4 keeps about 28 days") && w.contains("30 days"),
            "{w}"
        );
        assert_eq!(warning(&weekly(5), 30), None);
        assert_eq!(warning(&weekly(0), 30), None, "0 keeps every cycle");
        let every_run = settings("is_inc_backup=1\nfull_backup_period=0\nkeep_cycles=3\n");
        assert!(warning(&every_run, 1)
            .unwrap()
            .contains("3 cycles of one run each"));
        assert_eq!(
            warning(&settings("is_inc_backup=0\nkeep_cycles=1\n"), 365),
            None
        );
    }
}
