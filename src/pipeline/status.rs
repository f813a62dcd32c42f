//! `status`: is the backup healthy? The age of the last successful run against a threshold (for
//! monitoring: stale means exit 1), the current cycle and its position, archives waiting locally
//! for upload, and, in incremental mode, the server's oplog window against the interval between
//! runs: when the oplog would roll past the cycle's position before the next run, the next run
//! has to start a new cycle with a full dump, so we warn before it happens.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::records::{self, LastFailure, LastRun, LastVerify, LAST_FAILURE, LAST_RUN, LAST_VERIFY};
use crate::config::Settings;
use crate::error::Result;
use crate::layout;
use crate::metrics::{self, Gauge};
use crate::mongo::{connect, oplog};
use crate::position::Position;
use crate::state::{self, CycleInfo};

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub mode: &'static str,
    /// Local time of the last successful run, when known.
    pub last_backup: Option<String>,
    pub last_backup_age_seconds: Option<i64>,
    /// Its Unix time.
    pub last_backup_at: Option<i64>,
    /// How long the last successful run took, and the bytes it stored.
    pub last_run_seconds: Option<f64>,
    pub last_stored_bytes: Option<u64>,
    /// The last run, when it failed (a failure older than the last success is past).
    pub last_failure: Option<LastFailure>,
    pub last_verify: Option<LastVerify>,
    pub max_age_seconds: i64,
    /// No successful run, or the last one is older than `max_age_seconds`.
    pub stale: bool,
    pub last_summary: Option<String>,
    pub cycle: Option<String>,
    pub cycle_started: Option<String>,
    /// The oplog position the cycle is covered up to (state B).
    pub position: Option<String>,
    /// Its time (Unix seconds): the newest write a restore can bring back.
    pub position_time: Option<i64>,
    /// Archives a failed upload left for the next run.
    pub pending_archives: Vec<String>,
    pub oplog: Option<OplogWindow>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OplogWindow {
    pub oldest: Option<String>,
    pub newest: Option<String>,
    pub window_seconds: i64,
    /// How full the capped oplog is (0..1), when the server says; below 90% nothing is pruned
    /// yet, so the window is no limit.
    pub fill: Option<f64>,
    /// Between the last two runs, or as given.
    pub interval_seconds: Option<i64>,
    /// The oplog may not reach back to the cycle's position at the next run.
    pub at_risk: bool,
}

/// `status --max-age` when not given: a daily backup plus two hours of slack.
pub const DEFAULT_MAX_AGE_SECONDS: i64 = 26 * 3600;

pub struct StatusRequest {
    pub max_age_seconds: i64,
    /// The interval between runs, when the operator states it (else measured).
    pub interval_seconds: Option<i64>,
    /// Ask the server for its oplog window (incremental mode).
    pub oplog: bool,
}

pub async fn run(settings: &Settings, req: &StatusRequest) -> Result<Status> {
    let root = &settings.db_backup_root_path;
    let now = chrono::Local::now().timestamp();
    let last: Option<LastRun> = records::read(root, LAST_RUN)?;
    let failure: Option<LastFailure> = records::read::<LastFailure>(root, LAST_FAILURE)?
        .filter(|f| last.as_ref().is_none_or(|l| f.failed_at >= l.finished_at));
    let last_verify: Option<LastVerify> = records::read(root, LAST_VERIFY)?;
    let incremental = settings.mode.is_incremental();
    let info: Option<CycleInfo> = if incremental {
        state::read(&state::state_a_path(root))?
    } else {
        None
    };
    let cycle = info.as_ref().map(|i| i.last_circle_backup_dir_name.clone());
    let b_path = cycle.as_ref().map(|c| state::state_b_path(&root.join(c)));
    let position = match &cycle {
        Some(c) => state::read_b(&root.join(c))?,
        None => None,
    };
    // An installation switched over from the old scripts has no record yet: B's file time is
    // when its last archive was stored.
    let finished_at = last.as_ref().map(|l| l.finished_at).or_else(|| {
        b_path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64)
    });
    let age = finished_at.map(|t| now - t);
    let mut status = Status {
        mode: if incremental { "incremental" } else { "full" },
        last_backup: finished_at.map(local_time),
        last_backup_age_seconds: age,
        last_backup_at: finished_at,
        last_run_seconds: last.as_ref().and_then(|l| l.seconds),
        // A record that knows its duration knows its bytes: none stored is 0.
        last_stored_bytes: last
            .as_ref()
            .and_then(|l| l.seconds.map(|_| l.stored_bytes.unwrap_or(0))),
        last_failure: failure,
        last_verify,
        max_age_seconds: req.max_age_seconds,
        stale: age.is_none_or(|a| a > req.max_age_seconds),
        last_summary: last.as_ref().map(|l| l.summary.clone()),
        cycle: cycle.clone(),
        cycle_started: info.as_ref().and_then(|i| i.started_at()).map(local_time),
        position: position.map(|p| p.label()),
        position_time: position.map(|p| i64::from(p.t)),
        pending_archives: pending_archives(root, cycle.as_deref()),
        oplog: None,
        warnings: Vec::new(),
    };
    match age {
        None => status.warnings.push(format!(
            "no successful backup recorded in {}",
            root.display()
        )),
        Some(a) if a > req.max_age_seconds => status.warnings.push(format!(
            "the last successful backup is {} old (threshold {})",
            show_duration(a),
            show_duration(req.max_age_seconds)
        )),
        _ => {}
    }
    if let Some(f) = &status.last_failure {
        status.warnings.push(format!(
            "the last run failed at {}: {}",
            local_time(f.failed_at),
            f.error
        ));
    }
    if let Some(v) = status.last_verify.as_ref().filter(|v| !v.ok) {
        status.warnings.push(format!(
            "the last verify{} at {} failed: {}",
            v.name
                .as_ref()
                .map(|n| format!(" of {n}"))
                .unwrap_or_default(),
            local_time(v.finished_at),
            v.problem.as_deref().unwrap_or("see its report")
        ));
    }
    if !status.pending_archives.is_empty() {
        status.warnings.push(format!(
            "{} archive(s) wait for upload (an upload failed); the next run stores them first",
            status.pending_archives.len()
        ));
    }
    if incremental && req.oplog {
        let interval = req.interval_seconds.or_else(|| {
            last.as_ref()
                .and_then(|l| l.previous_finished_at.map(|p| l.finished_at - p))
        });
        let window = oplog_window(settings, position, finished_at, interval, now).await?;
        if let Some(w) = &window.1 {
            status.warnings.push(w.clone());
        }
        status.oplog = Some(window.0);
    }
    Ok(status)
}

/// The oplog's span and whether it will still reach back to `position` at the next run.
async fn oplog_window(
    settings: &Settings,
    position: Option<Position>,
    last_run: Option<i64>,
    interval: Option<i64>,
    now: i64,
) -> Result<(OplogWindow, Option<String>)> {
    let mongo = connect(&settings.mongo).await?;
    oplog::require_replica_set(&mongo).await?;
    let oldest = oplog::oldest(&mongo).await?;
    let newest = oplog::newest(&mongo).await?;
    let window = match (oldest, newest) {
        (Some(a), Some(b)) => i64::from(b.t) - i64::from(a.t),
        _ => 0,
    };
    let fill = oplog::fill(&mongo).await?;
    let pruning = fill.is_none_or(|f| f >= 0.9);
    let mut warning = None;
    let mut at_risk = false;
    if let (Some(b), Some(old)) = (position, oldest) {
        if old > b {
            at_risk = true;
            warning = Some(format!(
                "the oplog rolled over: its oldest entry {} is newer than the cycle's position {}; \
                 the next run starts a new cycle with a full dump",
                old.label(),
                b.label()
            ));
        } else if let Some(step) = interval.filter(|_| pruning) {
            // At the next run the oplog reaches back about `window` seconds from then; it must
            // still hold the cycle's position.
            let next_run = last_run.unwrap_or(now).max(now) + step;
            let needed = next_run - i64::from(b.t);
            if window < needed {
                at_risk = true;
                warning = Some(format!(
                    "the oplog holds {} of writes, but the next run (every {}) needs {} back to the \
                     cycle's position: it may roll over first; enlarge the oplog or run more often",
                    show_duration(window),
                    show_duration(step),
                    show_duration(needed)
                ));
            }
        }
    }
    Ok((
        OplogWindow {
            oldest: oldest.map(|p| p.label()),
            newest: newest.map(|p| p.label()),
            window_seconds: window,
            fill,
            interval_seconds: interval,
            at_risk,
        },
        warning,
    ))
}

/// The gauges of the metrics file. Ages are as of the writing; alerts should compare timestamps
/// with `time()`, since the file is rewritten only by runs.
pub fn gauges(st: &Status) -> Vec<Gauge> {
    let secs = |v: Option<i64>| v.map(|x| x as f64);
    let flag = |b: bool| Some(if b { 1.0 } else { 0.0 });
    let ran = st.last_backup_at.is_some() || st.last_failure.is_some();
    let window = st.oplog.as_ref();
    let verify = st.last_verify.as_ref();
    vec![
        Gauge {
            name: "mongo_oss_backup_last_success_timestamp_seconds",
            help: "Unix time of the last successful backup run.",
            value: secs(st.last_backup_at),
        },
        Gauge {
            name: "mongo_oss_backup_last_success_age_seconds",
            help: "Age of the last successful backup when this file was written.",
            value: secs(st.last_backup_age_seconds),
        },
        Gauge {
            name: "mongo_oss_backup_last_run_success",
            help: "1 when the last backup run succeeded, 0 when it failed.",
            value: flag(st.last_failure.is_none()).filter(|_| ran),
        },
        Gauge {
            name: "mongo_oss_backup_last_failure_timestamp_seconds",
            help: "Unix time of the last failed run, when it is newer than the last success.",
            value: secs(st.last_failure.as_ref().map(|f| f.failed_at)),
        },
        Gauge {
            name: "mongo_oss_backup_last_run_duration_seconds",
            help: "Duration of the last successful backup run.",
            value: st.last_run_seconds,
        },
        Gauge {
            name: "mongo_oss_backup_last_run_stored_bytes",
            help: "Bytes of archive the last successful run stored in the bucket.",
            value: st.last_stored_bytes.map(|b| b as f64),
        },
        Gauge {
            name: "mongo_oss_backup_position_timestamp_seconds",
            help: "Time of the newest write the current cycle covers: what a restore brings back.",
            value: secs(st.position_time),
        },
        Gauge {
            name: "mongo_oss_backup_oplog_window_seconds",
            help: "Seconds of writes the server's oplog holds.",
            value: window.map(|w| w.window_seconds as f64),
        },
        Gauge {
            name: "mongo_oss_backup_oplog_at_risk",
            help: "1 when the oplog may roll past the cycle's position before the next run.",
            value: window.and_then(|w| flag(w.at_risk)),
        },
        Gauge {
            name: "mongo_oss_backup_pending_archives",
            help: "Archives waiting locally for upload after a failed upload.",
            value: Some(st.pending_archives.len() as f64),
        },
        Gauge {
            name: "mongo_oss_backup_last_verify_success",
            help: "1 when the last verify found the backup as its manifest says, 0 otherwise.",
            value: verify.and_then(|v| flag(v.ok)),
        },
        Gauge {
            name: "mongo_oss_backup_last_verify_timestamp_seconds",
            help: "Unix time of the last verify.",
            value: verify.map(|v| v.finished_at as f64),
        },
    ]
}

/// Writes `status` as a metrics file, labelled with the installation (config file and database).
pub fn write_metrics(settings: &Settings, st: &Status, path: &Path) -> Result<()> {
    let config = std::path::absolute(&settings.source).unwrap_or_else(|_| settings.source.clone());
    let text = metrics::render(
        &[
            ("config", &config.to_string_lossy()),
            ("db", &settings.db_name),
        ],
        &gauges(st),
    );
    metrics::write_file(path, &text)
}

/// Rewrites the configured metrics file after a run. The oplog window is asked of the server when
/// it can be reached (else left out); a failure only warns: the run's outcome stands.
pub async fn refresh_metrics(settings: &Settings, path: &Path, ask_server: bool) {
    let mut req = StatusRequest {
        max_age_seconds: DEFAULT_MAX_AGE_SECONDS,
        interval_seconds: None,
        oplog: ask_server,
    };
    let mut st = run(settings, &req).await;
    if st.is_err() && ask_server {
        req.oplog = false;
        st = run(settings, &req).await;
    }
    if let Err(e) = st.and_then(|st| write_metrics(settings, &st, path)) {
        log::warn!("could not write the metrics file {}: {e}", path.display());
    }
}

/// Archives with a `.pos.json` sidecar under the cycle's directory.
fn pending_archives(root: &Path, cycle: Option<&str>) -> Vec<String> {
    let Some(cycle) = cycle else {
        return Vec::new();
    };
    let dir = root.join(cycle);
    let mut found: Vec<PathBuf> = layout::existing_archives_of(&layout::full_dir(&dir));
    if let Ok(entries) = std::fs::read_dir(layout::increments_dir(&dir)) {
        found.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
    }
    let mut pending: Vec<String> = found
        .into_iter()
        .filter(|p| {
            layout::strip_archive_suffix(&p.to_string_lossy()).is_some()
                && state::sidecar_path(p).exists()
        })
        .map(|p| p.display().to_string())
        .collect();
    pending.sort();
    pending
}

fn local_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

/// `3725` as `1h2m5s`.
pub fn show_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m{sec}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// `90m`, `26h`, `2d`, `3600` (seconds) as seconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = number.parse().ok()?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(factor).filter(|s| *s > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90m"), Some(5400));
        assert_eq!(parse_duration("2d"), Some(172_800));
        assert_eq!(parse_duration("30"), Some(30));
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_duration("0h"), None);
        assert_eq!(show_duration(3725), "1h2m");
        assert_eq!(show_duration(59), "59s");
        assert_eq!(show_duration(90_000), "1d1h");
    }
}
