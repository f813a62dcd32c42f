//! The commands that do work: they call a pipeline and print its summary. Log lines go to stderr;
//! the final summary goes to stdout, one line per fact, so a cron log reads well.

use crate::config::Settings;
use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::{backup_full, restore_full};
use crate::runtime::block_on;

pub fn backup(settings: &Settings) -> Result<i32> {
    if settings.is_inc_backup {
        return Err(Error::new(
            ErrorKind::Config,
            "incremental mode (is_inc_backup=1) is not available yet in this version; set is_inc_backup=0",
        ));
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
