//! The commands that do work: they call a pipeline and print its summary. Log lines go to stderr;
//! the final summary goes to stdout, one line per fact, so a cron log reads well.

use crate::config::Settings;
use crate::error::{ErrorKind, Result};
use crate::pipeline::backup_inc::{self, IncOutcome};
use crate::pipeline::{backup_full, restore_full, restore_inc};
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

/// One line per restored database, then its failed documents and indexes and ignored files.
fn print_database(db: &crate::mongo::restore::DatabaseRestore) {
    let present: u64 = db.collections.iter().map(|c| c.already_present).sum();
    let again = if present > 0 {
        format!(" ({present} were already there, identical)")
    } else {
        String::new()
    };
    println!(
        "restored {}: {} collections, {} documents{again}, {} failed documents, {} failed indexes",
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

pub fn restore_full(settings: &Settings, req: &restore_full::RestoreFullRequest) -> Result<i32> {
    let report = block_on(restore_full::run(settings, req))?;
    for db in &report.databases {
        print_database(db);
    }
    println!("restore of {} took {:.1}s", req.name, report.seconds);
    Ok(if report.failed() { 3 } else { 0 })
}

/// `--until`: an oplog timestamp `secs[:inc]`, or a local time `YYYY-mm-dd HH:MM[:SS]`.
pub fn parse_until(text: &str) -> Result<mongodb::bson::Timestamp> {
    use mongodb::bson::Timestamp;
    let t = text.trim();
    if let Some((secs, inc)) = t
        .split_once(':')
        .filter(|(a, _)| a.chars().all(|c| c.is_ascii_digit()) && !a.is_empty())
    {
        if let (Ok(time), Ok(increment)) = (secs.parse(), inc.parse()) {
            return Ok(Timestamp { time, increment });
        }
    }
    if let Ok(time) = t.parse::<u32>() {
        return Ok(Timestamp {
            time,
            increment: u32::MAX,
        });
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(t, format) {
            if let Some(local) = naive.and_local_timezone(chrono::Local).earliest() {
                return Ok(Timestamp {
                    time: local.timestamp() as u32,
                    increment: u32::MAX,
                });
            }
        }
    }
    Err(crate::error::Error::config(format!(
        "--until: \"{text}\" is neither a time (2015-11-24 18:30:00) nor an oplog timestamp (1448361000:1)"
    )))
}

pub fn restore_inc(settings: &Settings, req: &restore_inc::RestoreIncRequest) -> Result<i32> {
    let report = block_on(restore_inc::run(settings, req))?;
    if req.dry_run {
        println!("dry run of cycle {}: nothing was changed", req.cycle);
        for p in &report.plan {
            let ops: Vec<String> = p
                .entries_by_op
                .iter()
                .map(|(op, n)| format!("{op}={n}"))
                .collect();
            let range = match (p.first, p.last) {
                (Some(a), Some(b)) => {
                    format!("{}:{} .. {}:{}", a.time, a.increment, b.time, b.increment)
                }
                _ => "no entry".into(),
            };
            println!("  {}: {} ({range})", p.name, ops.join(" "));
        }
        return Ok(0);
    }
    let mut failed = false;
    for db in &report.databases {
        print_database(db);
        failed |= db.failed_documents() > 0 || db.failed_indexes() > 0;
    }
    let r = &report.replay;
    let applied: Vec<String> = r.applied.iter().map(|(k, n)| format!("{k}={n}")).collect();
    println!(
        "replayed {}: {}; {} skipped, {} updates of missing documents, {} transactions committed, {} aborted{}",
        req.cycle,
        if applied.is_empty() { "nothing".to_string() } else { applied.join(" ") },
        r.skipped,
        r.missing_update_targets,
        r.transactions_committed,
        r.transactions_aborted,
        match (r.stopped_at_until, r.last) {
            (true, Some(t)) => format!("; stopped at --until after {}:{}", t.time, t.increment),
            _ => String::new(),
        }
    );
    println!("restore of {} took {:.1}s", req.cycle, report.seconds);
    Ok(if failed { 3 } else { 0 })
}
