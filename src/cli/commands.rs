//! The commands that do work: they call a pipeline and print its summary. Log lines go to stderr;
//! the final summary goes to stdout, one line per fact, so a cron log reads well.

use crate::config::Settings;
use crate::error::{ErrorKind, Result};
use crate::pipeline::backup_inc::{self, IncOutcome};
use crate::pipeline::{backup_full, restore_full};
use crate::runtime::block_on;

/// One backup run under the lock beside the config file (where start.py lives).
pub fn backup(settings: &Settings) -> Result<i32> {
    let lock_dir = settings
        .source
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let _lock = match crate::lock::acquire(lock_dir) {
        Ok(lock) => lock,
        Err(e) if e.kind() == ErrorKind::Busy => {
            eprintln!("{e}");
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    if settings.is_inc_backup {
        return backup_inc(settings);
    }
    let report = block_on(backup_full::run(settings, chrono::Local::now()))?;
    let docs: u64 = report.collections.iter().map(|c| c.documents).sum();
    let place = match (&report.upload, &report.local_dir) {
        (Some(up), _) => format!(
            "stored as {} ({} bytes, CRC64 {})",
            up.key, up.size, up.crc64
        ),
        (None, Some(dir)) => format!("kept in {}", dir.display()),
        (None, None) => String::new(),
    };
    println!(
        "backup {}: {} collections, {docs} documents, {place} in {:.1}s",
        report.name,
        report.collections.len(),
        report.seconds
    );
    Ok(0)
}

fn backup_inc(settings: &Settings) -> Result<i32> {
    let report = block_on(backup_inc::run(settings, chrono::Local::now()))?;
    for key in &report.flushed {
        println!("stored {key}, left unstored by an earlier run");
    }
    let what = match &report.outcome {
        IncOutcome::FullDump { documents } => format!("full dump of {documents} documents"),
        IncOutcome::Increment { name, entries } => {
            format!("increment {name} with {entries} oplog entries")
        }
        IncOutcome::NothingNew => "nothing new".to_string(),
    };
    println!(
        "cycle {}: {what}; covered up to {}:{}",
        report.cycle, report.position.time, report.position.increment
    );
    Ok(0)
}

pub fn restore_full(settings: &Settings, req: &restore_full::RestoreFullRequest) -> Result<i32> {
    let report = block_on(restore_full::run(settings, req))?;
    for db in &report.databases {
        println!(
            "restored {}: {} collections, {} documents, {} failed documents, {} failed indexes",
            db.database,
            db.collections.len(),
            db.documents(),
            db.failed_documents(),
            db.failed_indexes()
        );
        for c in &db.collections {
            for example in &c.examples {
                println!("  failed document in {}: {example}", c.collection);
            }
            for failure in &c.index_failures {
                println!("  failed index on {}: {failure}", c.collection);
            }
        }
        for ignored in &db.ignored_files {
            println!("  not restored: {ignored}");
        }
    }
    println!("restore of {} took {:.1}s", req.name, report.seconds);
    Ok(if report.failed() { 3 } else { 0 })
}
