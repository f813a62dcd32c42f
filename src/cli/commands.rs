//! The commands that do work: they call a pipeline and print its result. Log lines go to stderr;
//! the result goes to stdout, one line per fact so a cron log reads well, or one JSON object.

use std::path::Path;

use crate::config::Settings;
use crate::error::{ErrorKind, Result};
use crate::logging::count;
use crate::pipeline::backup::{self, BackupOutcome};
use crate::pipeline::{catalog, prune, restore_full, restore_inc};
use crate::pipeline::{status, verify};
use crate::progress::Progress;
use crate::runtime::block_on;

/// One backup run (under the lock beside the config file, where start.py lives).
pub fn backup(settings: &Settings, json: bool, progress: &Progress) -> Result<i32> {
    let outcome = match backup::run(settings, progress) {
        Ok(outcome) => outcome,
        Err(e) if e.kind() == ErrorKind::Busy => {
            crate::logging::user_line(&e.to_string());
            if json {
                println!("{}", serde_json::json!({"busy": e.to_string()}));
            }
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    if json {
        print_json(&outcome.to_json());
        return Ok(0);
    }
    if let BackupOutcome::Incremental(r) = &outcome {
        for key in &r.flushed {
            result_line(&format!("stored {key}, left unstored by an earlier run"));
        }
    }
    result_line(&outcome.summary());
    Ok(0)
}

/// A backup's result on stdout: the last line of its run in a cron log, dated like the others
/// there (a terminal gets it plain).
fn result_line(text: &str) {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        println!("{text}");
    } else {
        println!(
            "{} {text}",
            chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
        );
    }
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// `check-config --bucket`: the bucket answers and takes the credentials; its retention policy,
/// and whether keep_cycles can be honoured under it. Lines on stderr (stdout holds the settings).
pub fn check_bucket(settings: &Settings) -> Result<()> {
    block_on(async {
        let storage =
            crate::pipeline::open_source_storage(settings, "check-config --bucket").await?;
        let line = crate::logging::user_line;
        line(&format!(
            "bucket: {} answers and takes the credentials",
            storage.describe()
        ));
        match storage.retention().await? {
            None => line("bucket retention policy: none"),
            Some(r) => {
                line(&format!("bucket retention policy: {} days", r.days));
                if let Some(w) = prune::keep_cycles_shorter_than_retention(settings, r.days) {
                    line(&format!("warning: {w}"));
                }
            }
        }
        Ok(())
    })
}

/// `list`: cycles and full backups in the bucket.
pub fn list(settings: &Settings, json: bool) -> Result<i32> {
    let catalog = block_on(catalog::list(settings))?;
    if json {
        print_json(&catalog);
        return Ok(0);
    }
    if let (Some(days), Some(locked)) = (catalog.retention_days, catalog.retention_locked) {
        let state = match locked {
            true => "locked",
            false => "in progress: its owner can still remove it; lock it to make it binding",
        };
        println!("bucket retention policy (WORM): {days} days, {state}");
    }
    if catalog.cycles.is_empty() && catalog.full_backups.is_empty() {
        println!("no backup in the bucket");
    }
    for c in &catalog.cycles {
        let inc_bytes: u64 = c.increments.iter().map(|i| i.size).sum();
        println!(
            "cycle {}  {}  {}  full {} + {} increments ({})  {} .. {}",
            c.name,
            if c.complete { "complete" } else { "INCOMPLETE" },
            if c.has_manifest {
                "manifest"
            } else {
                "no manifest"
            },
            c.full
                .as_ref()
                .map(|f| crate::logging::size(f.size))
                .unwrap_or_else(|| "missing".into()),
            c.increments.len(),
            crate::logging::size(inc_bytes),
            c.covers_from.as_deref().unwrap_or("?"),
            c.covers_to.as_deref().unwrap_or("?"),
        );
        if let Some(until) = &c.protected_until {
            println!("  protected by the bucket's retention policy (WORM) until {until}");
        }
        if let Some(f) = &c.full {
            let docs = match (f.documents, f.encrypted) {
                (Some(d), _) => format!("  {d} documents"),
                (None, true) => "  encrypted (age): restores need the identity".into(),
                (None, false) => String::new(),
            };
            println!("  {}  {}{docs}", f.key, crate::logging::size(f.size));
        }
        for i in &c.increments {
            let range = match (&i.oplog_from, &i.oplog_to) {
                (Some(a), Some(b)) => format!("  {a} .. {b}"),
                _ => i
                    .created
                    .as_ref()
                    .map(|t| format!("  {t}"))
                    .unwrap_or_default(),
            };
            let entries = i
                .entries
                .map(|e| format!("  {e} entries"))
                .unwrap_or_default();
            println!(
                "  {}  {}{entries}{range}",
                i.key,
                crate::logging::size(i.size)
            );
        }
        for m in &c.missing {
            println!("  MISSING {m} (named by the manifest)");
        }
    }
    for f in &catalog.full_backups {
        println!(
            "full {}  {}  {}  {}",
            f.name,
            crate::logging::size(f.archive.size),
            f.archive.created.as_deref().unwrap_or("?"),
            if f.has_manifest {
                "manifest"
            } else {
                "no manifest"
            }
        );
    }
    Ok(0)
}

/// `status`: exit 1 when the last backup is stale.
pub fn status(
    settings: &Settings,
    req: &status::StatusRequest,
    prometheus: Option<&Path>,
    json: bool,
) -> Result<i32> {
    let st = block_on(status::run(settings, req))?;
    if let Some(path) = prometheus {
        status::write_metrics(settings, &st, path)?;
    }
    if json {
        print_json(&st);
    } else {
        let age = st
            .last_backup_age_seconds
            .map(|a| format!(" ({} ago)", status::show_duration(a)))
            .unwrap_or_default();
        println!(
            "last backup: {}{age}  {}",
            st.last_backup.as_deref().unwrap_or("none"),
            if st.stale { "STALE" } else { "ok" }
        );
        if let Some(s) = &st.last_summary {
            println!("  {s}");
        }
        if let Some(c) = &st.cycle {
            println!(
                "cycle: {c} started {}, covered up to {}",
                st.cycle_started.as_deref().unwrap_or("?"),
                st.position.as_deref().unwrap_or("nothing yet")
            );
        }
        if let Some(w) = &st.oplog {
            println!(
                "oplog: {} of writes ({} .. {}){}{}",
                status::show_duration(w.window_seconds),
                w.oldest.as_deref().unwrap_or("?"),
                w.newest.as_deref().unwrap_or("?"),
                w.fill
                    .map(|f| format!(", {:.0}% full", f * 100.0))
                    .unwrap_or_default(),
                w.interval_seconds
                    .map(|i| format!(", runs every {}", status::show_duration(i)))
                    .unwrap_or_default()
            );
        }
        for p in &st.pending_archives {
            println!("pending upload: {p}");
        }
    }
    for w in &st.warnings {
        log::warn!("{w}");
    }
    Ok(if st.stale { 1 } else { 0 })
}

/// `verify`: exit 1 when the bucket does not match the manifest.
pub fn verify(
    settings: &Settings,
    req: &verify::VerifyRequest,
    json: bool,
    progress: &Progress,
) -> Result<i32> {
    let report = block_on(verify::run(settings, req, progress))?;
    if json {
        print_json(&report);
    } else {
        if !report.has_manifest {
            println!(
                "{} has no manifest (stored before there were manifests): checking presence only",
                report.name
            );
        }
        for a in &report.archives {
            match &a.problem {
                None => println!(
                    "ok   {}  {}  CRC64 {}",
                    a.key,
                    crate::logging::size(a.size.unwrap_or_default()),
                    a.crc64.as_deref().unwrap_or("not reported (size only)")
                ),
                Some(p) => println!("BAD  {}: {p}", a.key),
            }
        }
        for u in &report.unrecorded {
            println!("note {u}: in the bucket, not in the manifest");
        }
        if let Some(deep) = &report.deep {
            for c in &deep.collections {
                println!(
                    "{}  {}: {} documents, hash {}",
                    if c.ok { "ok  " } else { "BAD " },
                    c.namespace,
                    c.documents,
                    c.hash
                );
            }
            for i in &deep.increments {
                println!(
                    "{}  {}: {} oplog entries",
                    if i.ok { "ok  " } else { "BAD " },
                    i.key,
                    i.entries
                );
            }
            if let Some(p) = deep.reached {
                println!("replayed into the scratch copy up to {}", p.describe());
            }
        }
        for note in &report.notes {
            println!("note: {note}");
        }
        if report.ok {
            println!(
                "verified {}: {}{}",
                report.name,
                crate::logging::count(report.archives.len() as u64, "archive"),
                match &report.deep {
                    Some(d) => format!(
                        ", restored, compared and replayed in {:.1}s (the time a restore of it takes here)",
                        d.restore_seconds
                    ),
                    None => String::new(),
                }
            );
        }
    }
    for p in &report.problems {
        log::error!("{}: {p}", report.name);
    }
    Ok(if report.ok { 0 } else { 1 })
}

/// `prune`: keep the newest cycles.
pub fn prune(settings: &Settings, keep: Option<u32>, dry_run: bool, json: bool) -> Result<i32> {
    let keep = keep.unwrap_or(settings.keep_cycles) as usize;
    let report = block_on(prune::run(settings, keep, dry_run))?;
    if json {
        print_json(&report);
    } else {
        let verb = if dry_run { "would delete" } else { "deleted" };
        for c in &report.deleted {
            println!("{verb} cycle {c}");
        }
        for (c, until) in &report.protected {
            println!(
                "kept cycle {c}: protected by the bucket's retention policy (WORM) until {until}"
            );
        }
        println!(
            "kept {} cycles, {verb} {} ({} objects)",
            report.kept.len(),
            report.deleted.len(),
            report.objects_deleted
        );
    }
    Ok(0)
}

/// One line per restored database, then its failed documents and indexes and ignored files.
fn print_database(db: &crate::mongo::restore::DatabaseRestore) {
    let present: u64 = db.collections.iter().map(|c| c.already_present).sum();
    let replaced: u64 = db.collections.iter().map(|c| c.replaced).sum();
    let again = match (present, replaced) {
        (0, 0) => String::new(),
        (1, 0) => " (1 was already there, identical)".to_string(),
        (p, 0) => format!(" ({p} were already there, identical)"),
        (p, r) => format!(
            " ({p} were already there, identical; {r} were there with other content and were replaced)"
        ),
    };
    println!(
        "restored {}: {}, {}{again}, {}, {}",
        db.database,
        count(db.collections.len() as u64, "collection"),
        count(db.documents(), "document"),
        count(db.failed_documents(), "failed document"),
        count(db.failed_indexes() as u64, "failed index")
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

/// A selective restore's collections: source, target, what the dump holds, what the replay adds.
fn print_selection(plan: &crate::pipeline::selective::SelectivePlan, dry_run: bool) {
    let verb = if dry_run { "would restore" } else { "selected" };
    for c in &plan.collections {
        let from_dump = match (&c.dumped_as, c.dump_documents) {
            (Some(name), Some(n)) if *name == c.source => {
                format!("{} in the dump", count(n, "document"))
            }
            (Some(name), Some(n)) => format!("dumped as {name}, {}", count(n, "document")),
            (Some(name), None) if *name == c.source => "in the dump".to_string(),
            (Some(name), None) => format!("dumped as {name}"),
            (None, _) => "created after the dump".to_string(),
        };
        let entries: Vec<String> = c
            .entries
            .iter()
            .map(|(ns, n)| format!("{ns}={n}"))
            .collect();
        let replay = match entries.is_empty() {
            true => "no oplog entry".to_string(),
            false => format!("oplog entries {}", entries.join(" ")),
        };
        println!(
            "{verb} {} -> {} ({from_dump}; {replay})",
            c.source, c.target
        );
    }
}

pub fn restore_full(
    settings: &Settings,
    req: &restore_full::RestoreFullRequest,
    json: bool,
    progress: &Progress,
) -> Result<i32> {
    let report = block_on(restore_full::run(settings, req, progress))?;
    if json {
        print_json(&report);
        return Ok(restore_exit(report.failed()));
    }
    if let Some(plan) = &report.selection {
        print_selection(plan, req.dry_run);
    }
    if req.dry_run {
        println!("dry run of {}: nothing was changed", req.name);
        return Ok(0);
    }
    for db in &report.databases {
        print_database(db);
    }
    println!("restore of {} took {:.1}s", req.name, report.seconds);
    Ok(restore_exit(report.failed()))
}

/// `--until`: an oplog timestamp `secs[:inc]`, or a time (local unless it names its offset).
pub fn parse_until(text: &str) -> Result<crate::position::Position> {
    crate::position::Position::parse_point(text)
        .map_err(|why| crate::error::Error::config(format!("--until: {why}")))
}

pub fn restore_inc(
    settings: &Settings,
    req: &restore_inc::RestoreIncRequest,
    json: bool,
    progress: &Progress,
) -> Result<i32> {
    let report = block_on(restore_inc::run(settings, req, progress))?;
    let failed = crate::mongo::restore::any_failed(&report.databases);
    if json {
        print_json(&report);
        return Ok(restore_exit(failed));
    }
    let chain = &report.chain;
    if let Some(plan) = &report.selection {
        print_selection(plan, req.dry_run);
    }
    if req.dry_run {
        println!("dry run of cycle {}: nothing was changed", req.cycle);
        if let Some(start) = chain.start {
            println!("  full dump from {}", start.describe());
        }
        for p in &report.plan {
            let ops: Vec<String> = p
                .entries_by_op
                .iter()
                .map(|(op, n)| format!("{op}={n}"))
                .collect();
            let range = match (p.first, p.last) {
                (Some(a), Some(b)) => format!("{a} .. {b}"),
                _ => "no entry".into(),
            };
            println!("  {}: {} ({range})", p.name, ops.join(" "));
        }
    } else {
        for db in &report.databases {
            print_database(db);
        }
        let r = &report.replay;
        let applied: Vec<String> = r.applied.iter().map(|(k, n)| format!("{k}={n}")).collect();
        println!(
            "replayed {}: {}; {} skipped{}, {} updates of missing documents, {} committed{}, {} aborted{}{}",
            req.cycle,
            if applied.is_empty() { "nothing".to_string() } else { applied.join(" ") },
            r.skipped,
            match report.selection {
                Some(_) => format!(", {} outside the selection", r.excluded),
                None => String::new(),
            },
            r.missing_update_targets,
            crate::logging::count(r.transactions_committed, "transaction"),
            match r.transactions_logged_op_by_op {
                0 => String::new(),
                n => format!(" ({n} logged op by op, without applyOps)"),
            },
            r.transactions_aborted,
            match r.repeated {
                0 => String::new(),
                n => format!(", {n} repeated entries applied once"),
            },
            match (r.stopped_at_until, r.last) {
                (true, Some(t)) => format!("; stopped at --until after {t}"),
                _ => String::new(),
            }
        );
    }
    for note in chain.notes.iter().chain(report.replay.notes.iter()) {
        println!("note: {note}");
    }
    if let Some(stopped) = &chain.stopped {
        println!("STOPPED EARLY: {stopped}");
    }
    let verb = if req.dry_run {
        "would restore"
    } else {
        "restored"
    };
    match report.reached {
        Some(p) => println!("{verb} cycle {} up to {}", req.cycle, p.describe()),
        None => println!("{verb} cycle {}", req.cycle),
    }
    if !req.dry_run {
        println!("restore of {} took {:.1}s", req.cycle, report.seconds);
    }
    Ok(restore_exit(failed))
}

/// A restore that could not restore some documents or indexes exits with `EXIT_INCOMPLETE`.
fn restore_exit(failed: bool) -> i32 {
    if failed {
        crate::error::EXIT_INCOMPLETE
    } else {
        0
    }
}
