//! The `mongo-oss-backup` command line: clap parsing, one function per command, exit codes.
//! It calls the core and prints; it holds no backup logic of its own.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

mod bars;
mod commands;
pub use commands::parse_until;
mod scripts;

use crate::config;
use crate::error::{Error, Result};
use crate::progress::Progress;

const EXIT_CODES: &str = "Exit codes:
  0  success (also: another run holds the lock, said on stderr)
  1  the operation failed (one line on stderr says why); `status`: the last backup is stale;
     `verify`: the backup does not match its manifest
  2  bad configuration or usage
  3  a restore finished but some documents or indexes could not be restored";

#[derive(Parser, Debug)]
#[command(
    name = "mongo-oss-backup",
    version,
    about = "Back up MongoDB (full dumps and oplog increments) to Aliyun OSS, S3 or a folder, and restore it.",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(flatten)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

/// How the run talks: progress bars on a terminal, plain log lines otherwise.
#[derive(Args, Debug, Clone, Copy)]
struct Output {
    /// Print the result as one JSON object on stdout (log lines stay on stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Only warnings and errors on stderr, no progress bars (the result line stays).
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Debug log lines.
    #[arg(long, short, global = true)]
    verbose: bool,
}

#[derive(Args, Debug, Clone)]
struct ConfigArg {
    /// The config.properties to read.
    #[arg(long, default_value = "config.properties")]
    config: PathBuf,
}

/// mongorestore's namespace options. Patterns name `db.collection` (a bare `db`: all of it) as
/// the collections are named at the point restored.
#[derive(clap::Args, Debug, Default)]
struct NsArgs {
    /// Restore only the collections matching this pattern (`*` is any run of characters);
    /// repeatable.
    #[arg(long = "ns-include", value_name = "PATTERN")]
    include: Vec<String>,
    /// Leave out the collections matching this pattern; repeatable.
    #[arg(long = "ns-exclude", value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Restore the collections matching this pattern (`$name$` variables) under the --ns-to
    /// name of the same position; repeatable. Nothing outside the targets is read or written,
    /// and a target holding documents is refused unless --drop.
    #[arg(long = "ns-from", value_name = "PATTERN")]
    from: Vec<String>,
    /// The new name for the --ns-from of the same position (`$name$` as matched there).
    #[arg(long = "ns-to", value_name = "PATTERN")]
    to: Vec<String>,
}

impl NsArgs {
    fn options(self) -> crate::pipeline::selective::NsOptions {
        crate::pipeline::selective::NsOptions {
            include: self.include,
            exclude: self.exclude,
            from: self.from,
            to: self.to,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one backup as configured (what start.py runs from cron).
    Backup {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Restore a full backup or an incremental cycle from the bucket into MongoDB.
    Restore {
        #[command(flatten)]
        config: ConfigArg,
        /// Name of a full-mode backup, e.g. mongodb_backup_titan_201512221438.
        #[arg(long, conflicts_with = "cycle")]
        full: Option<String>,
        /// Name of an incremental cycle, e.g. mongodb_cycle_backup_titan_20151124141133.
        #[arg(long)]
        cycle: Option<String>,
        /// Cycle only: stop after the last oplog entry at or before this point
        /// ("2015-11-24 18:30:00" local time, or an oplog timestamp "1448361000:1").
        #[arg(long, requires = "cycle")]
        until: Option<String>,
        /// List what would be applied (files, entries per op, time range; with --ns-*, each
        /// collection, its target and its entries); touch no server.
        #[arg(long)]
        dry_run: bool,
        /// Cycle only: skip oplog entries of unknown kinds instead of stopping.
        #[arg(long, requires = "cycle")]
        skip_unknown: bool,
        /// Cycle only: replay the increments over the database as it is (no full dump restore).
        #[arg(long, requires = "cycle")]
        oplog_only: bool,
        /// Cycle only: when an increment is missing or damaged, restore up to the last point
        /// before it (and say where it stopped) instead of refusing.
        #[arg(long, requires = "cycle")]
        allow_gap: bool,
        /// Suffix of the archive in the bucket [default: the one its manifest records, else the
        /// one the bucket holds].
        #[arg(long)]
        suffix: Option<String>,
        /// Local directory to download and extract into [default: <db_backup_root_path>/restore].
        #[arg(long)]
        local_dir: Option<PathBuf>,
        /// The backup is already extracted in --local-dir: do not download it.
        #[arg(long)]
        downloaded: bool,
        /// Download and extract the dump into --local-dir first, and keep it there (for
        /// --downloaded) [default: restore it as it downloads, with nothing extracted].
        #[arg(long, conflicts_with = "downloaded")]
        download_first: bool,
        /// Restore into this database instead of db_name.
        #[arg(long)]
        target_db: Option<String>,
        /// Drop each collection before restoring it.
        #[arg(long)]
        drop: bool,
        #[command(flatten)]
        ns: NsArgs,
        #[command(flatten)]
        restore_user: RestoreUserArg,
    },
    /// List the cycles and full backups in the bucket: sizes, time ranges, whether complete.
    List {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Age of the last backup, current cycle, oplog window; exit 1 when the last backup is stale.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Stale when the last successful backup is older than this (90m, 26h, 2d).
        #[arg(long, default_value = "26h")]
        max_age: String,
        /// The interval between runs, for the oplog window check [default: measured between the
        /// last two runs].
        #[arg(long)]
        interval: Option<String>,
        /// Also write the status as a Prometheus textfile (node_exporter's textfile collector),
        /// replaced atomically.
        #[arg(long, value_name = "FILE")]
        prometheus: Option<PathBuf>,
    },
    /// Check a cycle or full backup in the bucket against its manifest (size and CRC64 by HEAD).
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// The cycle or full backup [default: the newest cycle].
        name: Option<String>,
        /// Also restore the dump into a scratch database on the configured server and compare each
        /// collection's count and hash with the manifest, and count every increment's entries.
        #[arg(long)]
        deep: bool,
        /// Scratch space for --deep: a folder .verify-<pid> made and removed inside it [default:
        /// <db_backup_root_path>/verify].
        #[arg(long)]
        local_dir: Option<PathBuf>,
        #[command(flatten)]
        restore_user: RestoreUserArg,
    },
    /// Delete from the bucket the cycles older than the newest keep_cycles (never the current one).
    Prune {
        #[command(flatten)]
        config: ConfigArg,
        /// How many cycles to keep [default: keep_cycles].
        #[arg(long)]
        keep: Option<u32>,
        /// Show what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write start.py, restore_inc.py and restore_full.py into an existing installation's folder
    /// (and config.properties only if none is there).
    InstallScripts {
        /// The folder of the old scripts (where the crontab's start.py lives).
        dir: PathBuf,
    },
    /// Make an age key pair for client-side encryption: the identity (secret) goes into FILE,
    /// created 0600 and never overwritten; its public key is printed, for encrypt_recipients.
    Keygen {
        /// Where the identity goes (keep it off the backed-up host, and keep a second copy).
        file: PathBuf,
    },
    /// Print the effective settings of a config.properties as one JSON object.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
        /// Show secrets instead of "***".
        #[arg(long)]
        show_secrets: bool,
        /// Also ask the bucket: that it answers and takes the credentials, and its retention
        /// policy against keep_cycles (the file alone is checked offline).
        #[arg(long)]
        bucket: bool,
    },
}

/// Runs the command line `args` (program name first) and returns the process exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    crate::logging::init(config::LogLevel::Info);
    let json = args.iter().any(|a| a == "--json");
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = e.exit_code();
            if json && code != 0 {
                // A script asked for JSON: a usage error is JSON too (and still on stderr).
                let message = e.to_string();
                let first = message
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ");
                println!(
                    "{}",
                    serde_json::json!({"error": {"kind": "usage", "message": first, "context": {}}})
                );
            }
            let _ = e.print();
            return code;
        }
    };
    let output = cli.output;
    // Bars only for a person watching: stderr is a terminal, and no --quiet or --json.
    let bars = (std::io::stderr().is_terminal() && !output.quiet && !output.json)
        .then(|| Arc::new(bars::TerminalBars::new()));
    let _console = bars
        .clone()
        .map(|b| crate::progress::set_console(b as Arc<dyn crate::progress::Sink>));
    let progress = match bars {
        Some(b) => Progress::new(b),
        None => Progress::none(),
    };
    let outcome = run(cli, &progress);
    if output.json {
        if let Err(e) = &outcome {
            let context: serde_json::Map<String, serde_json::Value> = e
                .context()
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::from(v.as_str())))
                .collect();
            println!(
                "{}",
                serde_json::json!({"error": {"kind": e.kind().name(), "message": e.to_string(), "context": context}})
            );
        }
    }
    finish(outcome)
}

/// Loads the config and sets the log level it asks for, as --quiet / -v adjust it.
/// The user a restore (or `verify --deep`) writes with, when not the configured one, and the
/// identity that opens an encrypted backup.
#[derive(Args, Debug, Clone)]
struct RestoreUserArg {
    /// Write as this MongoDB user (auth database admin) instead of restore_db_user / db_user; its
    /// password comes from the environment variable MONGO_OSS_RESTORE_PASSWD.
    #[arg(long, value_name = "USER")]
    db_user: Option<String>,
    /// The age identity file (`age-keygen -o`) that opens a backup made with encrypt_recipients
    /// [default: the file or key in MONGO_OSS_AGE_IDENTITY].
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
}

impl RestoreUserArg {
    fn apply(self, mut settings: config::Settings) -> Result<config::Settings> {
        if let Some(user) = self.db_user {
            settings.restore_as(&user, None)?;
        }
        if let Some(file) = self.identity {
            settings.use_identity_file(&file)?;
        }
        Ok(settings)
    }
}

fn settings_for(config: &ConfigArg, output: Output) -> Result<config::Settings> {
    let settings = load_config(&config.config)?;
    let level = if output.quiet {
        config::LogLevel::Warn
    } else if output.verbose {
        config::LogLevel::Debug
    } else {
        settings.log_level
    };
    crate::logging::init(level);
    Ok(settings)
}

fn run(cli: Cli, progress: &Progress) -> Result<i32> {
    let out = cli.output;
    match cli.command {
        Command::Backup { config } => {
            commands::backup(&settings_for(&config, out)?, out.json, progress)
        }
        Command::Restore {
            config,
            full,
            cycle,
            until,
            dry_run,
            skip_unknown,
            oplog_only,
            allow_gap,
            suffix,
            local_dir,
            downloaded,
            download_first,
            target_db,
            drop,
            ns,
            restore_user,
        } => {
            if full.is_none() && cycle.is_none() {
                return Err(Error::config(
                    "restore needs --cycle NAME (an incremental cycle) or --full NAME (a full-mode backup); `mongo-oss-backup list` shows them",
                ));
            }
            let settings = restore_user.apply(settings_for(&config, out)?)?;
            let local_temp =
                local_dir.unwrap_or_else(|| settings.db_backup_root_path.join("restore"));
            if let Some(cycle) = cycle {
                let req = crate::pipeline::restore_inc::RestoreIncRequest {
                    cycle,
                    local_temp,
                    already_downloaded: downloaded,
                    download_first,
                    drop_existing: drop,
                    target_db,
                    until: until.as_deref().map(commands::parse_until).transpose()?,
                    dry_run,
                    skip_unknown,
                    oplog_only,
                    allow_gap,
                    ns: ns.options(),
                };
                return commands::restore_inc(&settings, &req, out.json, progress);
            }
            let req = crate::pipeline::restore_full::RestoreFullRequest {
                local_temp,
                name: full.unwrap_or_default(),
                suffix,
                already_downloaded: downloaded,
                download_first,
                drop_existing: drop,
                target_db,
                ns: ns.options(),
                dry_run,
            };
            commands::restore_full(&settings, &req, out.json, progress)
        }
        Command::List { config } => commands::list(&settings_for(&config, out)?, out.json),
        Command::Status {
            config,
            max_age,
            interval,
            prometheus,
        } => {
            let settings = settings_for(&config, out)?;
            let req = crate::pipeline::status::StatusRequest {
                max_age_seconds: duration_arg("--max-age", &max_age)?,
                interval_seconds: interval
                    .as_deref()
                    .map(|i| duration_arg("--interval", i))
                    .transpose()?,
                oplog: true,
            };
            commands::status(&settings, &req, prometheus.as_deref(), out.json)
        }
        Command::Verify {
            config,
            name,
            deep,
            local_dir,
            restore_user,
        } => {
            let settings = restore_user.apply(settings_for(&config, out)?)?;
            let req = crate::pipeline::verify::VerifyRequest {
                name,
                deep,
                local_dir,
            };
            commands::verify(&settings, &req, out.json, progress)
        }
        Command::Prune {
            config,
            keep,
            dry_run,
        } => {
            let settings = settings_for(&config, out)?;
            commands::prune(&settings, keep, dry_run, out.json)
        }
        Command::InstallScripts { dir } => scripts::install(&dir),
        Command::Keygen { file } => {
            let public = crate::crypt::generate_identity_file(&file)?;
            println!("{public}");
            log::info!(
                "wrote the identity to {} (keep it off the backed-up host); put the public key above in encrypt_recipients",
                file.display()
            );
            Ok(0)
        }
        Command::CheckConfig {
            config,
            show_secrets,
            bucket,
        } => check_config(&config.config, show_secrets, bucket),
    }
}

fn duration_arg(flag: &str, text: &str) -> Result<i64> {
    crate::pipeline::status::parse_duration(text).ok_or_else(|| {
        Error::config(format!(
            "{flag}: \"{text}\" is not a duration (90m, 26h, 2d)"
        ))
    })
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
        .and_then(|settings| commands::restore_full(&settings, &req, false, &Progress::none())),
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
        commands::restore_inc(&settings, &req, false, &Progress::none())
    };
    finish(run())
}

/// Prints an error as one line and maps the outcome to an exit code.
fn finish(outcome: Result<i32>) -> i32 {
    match outcome {
        Ok(code) => code,
        Err(e) => {
            crate::logging::user_line(&format!("error: {e}"));
            e.kind().exit_code()
        }
    }
}

/// Loads a config file, printing its warnings on stderr.
pub fn load_config(path: &std::path::Path) -> Result<config::Settings> {
    let loaded = config::load(path, &|k| std::env::var(k).ok())?;
    for w in &loaded.warnings {
        crate::logging::user_line(&format!("warning: {w}"));
    }
    Ok(loaded.settings)
}

fn check_config(path: &std::path::Path, show_secrets: bool, bucket: bool) -> Result<i32> {
    let settings = load_config(path)?;
    let json = serde_json::to_string_pretty(&settings.to_json(show_secrets))
        .map_err(|e| Error::new(crate::error::ErrorKind::Internal, e.to_string()))?;
    println!("{json}");
    if bucket {
        commands::check_bucket(&settings)?;
    }
    Ok(0)
}
