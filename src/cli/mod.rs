//! The `mongo-oss-backup` command line: clap parsing, one function per command, exit codes.
//! It calls the core and prints; it holds no backup logic of its own.
//!
//! Exit codes: 0 success; 1 the operation failed (the one-line cause is on stderr);
//! 2 bad configuration or usage.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod commands;
mod scripts;

use crate::config;
use crate::error::{Error, Result};

const EXIT_CODES: &str =
    "Exit codes: 0 success; 1 the operation failed (one line on stderr says why); \
2 bad configuration or usage.";

#[derive(Parser, Debug)]
#[command(
    name = "mongo-oss-backup",
    version,
    about = "Back up MongoDB (full dumps and oplog increments) to Aliyun OSS, S3 or a folder, and restore it.",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one backup as configured (what start.py runs from cron).
    Backup {
        /// The config.properties to read.
        #[arg(long, default_value = "config.properties")]
        config: PathBuf,
    },
    /// Restore a full backup or an incremental cycle from the bucket into MongoDB.
    Restore {
        /// The config.properties naming the bucket and the MongoDB to restore into.
        #[arg(long, default_value = "config.properties")]
        config: PathBuf,
        /// Name of a full-mode backup, e.g. mongodb_backup_titan_201512221438.
        #[arg(long, conflicts_with = "cycle", required_unless_present = "cycle")]
        full: Option<String>,
        /// Name of an incremental cycle, e.g. mongodb_cycle_backup_titan_20151124141133.
        #[arg(long)]
        cycle: Option<String>,
        /// Cycle only: stop after the last oplog entry at or before this point
        /// ("2015-11-24 18:30:00" local time, or an oplog timestamp "1448361000:1").
        #[arg(long, requires = "cycle")]
        until: Option<String>,
        /// Cycle only: list what would be applied (files, entries per op, time range); touch nothing.
        #[arg(long, requires = "cycle")]
        dry_run: bool,
        /// Cycle only: skip oplog entries of unknown kinds instead of stopping.
        #[arg(long, requires = "cycle")]
        skip_unknown: bool,
        /// Cycle only: replay the increments over the database as it is (no full dump restore).
        #[arg(long, requires = "cycle")]
        oplog_only: bool,
        /// Suffix of the archive in the bucket.
        #[arg(long, default_value = ".tar.gz")]
        suffix: String,
        /// Local directory to download and extract into [default: <db_backup_root_path>/restore].
        #[arg(long)]
        local_dir: Option<PathBuf>,
        /// The backup is already extracted in --local-dir: do not download it.
        #[arg(long)]
        downloaded: bool,
        /// Restore into this database instead of db_name.
        #[arg(long)]
        target_db: Option<String>,
        /// Drop each collection before restoring it.
        #[arg(long)]
        drop: bool,
    },
    /// Write start.py, restore_inc.py and restore_full.py into an existing installation's folder
    /// (and config.properties only if none is there).
    InstallScripts {
        /// The folder of the old scripts (where the crontab's start.py lives).
        dir: PathBuf,
    },
    /// Print the effective settings of a config.properties as one JSON object.
    CheckConfig {
        /// The config.properties to read.
        #[arg(long, default_value = "config.properties")]
        config: PathBuf,
        /// Show secrets instead of "***".
        #[arg(long)]
        show_secrets: bool,
    },
}

/// Runs the command line `args` (program name first) and returns the process exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    crate::logging::init(config::LogLevel::Info);
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    finish(run(cli))
}

fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Backup { config } => {
            let settings = load_config(&config)?;
            crate::logging::init(settings.log_level);
            commands::backup(&settings)
        }
        Command::Restore {
            config,
            full,
            cycle,
            until,
            dry_run,
            skip_unknown,
            oplog_only,
            suffix,
            local_dir,
            downloaded,
            target_db,
            drop,
        } => {
            let settings = load_config(&config)?;
            crate::logging::init(settings.log_level);
            let local_temp =
                local_dir.unwrap_or_else(|| settings.db_backup_root_path.join("restore"));
            if let Some(cycle) = cycle {
                let req = crate::pipeline::restore_inc::RestoreIncRequest {
                    cycle,
                    local_temp,
                    already_downloaded: downloaded,
                    drop_existing: drop,
                    target_db,
                    until: until.as_deref().map(commands::parse_until).transpose()?,
                    dry_run,
                    skip_unknown,
                    oplog_only,
                };
                return commands::restore_inc(&settings, &req);
            }
            let req = crate::pipeline::restore_full::RestoreFullRequest {
                local_temp,
                name: full.unwrap_or_default(),
                suffix,
                already_downloaded: downloaded,
                drop_existing: drop,
                target_db,
            };
            commands::restore_full(&settings, &req)
        }
        Command::InstallScripts { dir } => scripts::install(&dir),
        Command::CheckConfig {
            config,
            show_secrets,
        } => check_config(&config, show_secrets),
    }
}

/// The settings of an old restore script: its variables (the config keys of the same names) plus
/// what the script implies. Validated like config.properties, errors naming the script.
fn script_settings(
    script: &str,
    pairs: &[(String, String)],
    local_temp: &std::path::Path,
    downloaded: bool,
) -> Result<config::Settings> {
    let mut all = pairs.to_vec();
    all.push((
        "db_backup_root_path".into(),
        local_temp.to_string_lossy().into_owned(),
    ));
    all.push(("is_inc_backup".into(), "0".into()));
    all.push((
        "is_upload_to_oss".into(),
        if downloaded { "0" } else { "1" }.into(),
    ));
    Ok(config::from_pairs(script, &all, &|k| std::env::var(k).ok())?.settings)
}

/// restore_full.py's entry: its variables as config pairs plus the request; returns the exit code.
pub fn script_restore_full(
    pairs: &[(String, String)],
    req: crate::pipeline::restore_full::RestoreFullRequest,
) -> i32 {
    crate::logging::init(config::LogLevel::Info);
    finish(
        script_settings(
            "restore_full.py",
            pairs,
            &req.local_temp,
            req.already_downloaded,
        )
        .and_then(|settings| commands::restore_full(&settings, &req)),
    )
}

/// restore_inc.py's entry: its variables as config pairs plus the request; returns the exit code.
pub fn script_restore_inc(
    pairs: &[(String, String)],
    mut req: crate::pipeline::restore_inc::RestoreIncRequest,
    until: &str,
) -> i32 {
    crate::logging::init(config::LogLevel::Info);
    let mut run = || -> Result<i32> {
        if !until.trim().is_empty() {
            req.until = Some(commands::parse_until(until.trim())?);
        }
        let settings = script_settings(
            "restore_inc.py",
            pairs,
            &req.local_temp,
            req.already_downloaded,
        )?;
        commands::restore_inc(&settings, &req)
    };
    finish(run())
}

/// Prints an error as one line and maps the outcome to an exit code.
fn finish(outcome: Result<i32>) -> i32 {
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.kind().exit_code()
        }
    }
}

/// Loads a config file, printing its warnings on stderr.
pub fn load_config(path: &std::path::Path) -> Result<config::Settings> {
    let loaded = config::load(path, &|k| std::env::var(k).ok())?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    Ok(loaded.settings)
}

fn check_config(path: &std::path::Path, show_secrets: bool) -> Result<i32> {
    let settings = load_config(path)?;
    let json = serde_json::to_string_pretty(&settings.to_json(show_secrets))
        .map_err(|e| Error::new(crate::error::ErrorKind::Internal, e.to_string()))?;
    println!("{json}");
    Ok(0)
}
