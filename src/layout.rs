//! Where everything lives, in the bucket and on the local disk, in the old scripts' layout
//! (COMPAT §2, §3), and the parser that turns a bucket key back into what it is:
//!
//! ```text
//! <cycle>/full_backup.tar.gz                 full dump of a cycle (entries full_backup/<db>/…)
//! <cycle>/inc_backup/oplog_<stamp>.tar.gz    an increment (entries oplog_<stamp>/oplog.bson)
//!                                            (`.tar.zst` instead of `.tar.gz` with zstd)
//! <cycle>/manifest.json                      the cycle's manifest (ours)
//! mongodb_backup_titan_<stamp>.tar.gz        a full-mode backup (entries <name>/<db>/…)
//! mongodb_backup_titan_<stamp>.manifest.json its manifest (ours)
//! ```
//!
//! Locally a cycle is `<root>/<cycle>/` with `last.json`, `full_backup/` and `inc_backup/oplog_*/`.
//! Every module that spells a key, a folder or a name goes through here.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Local, NaiveDateTime};

use crate::codec::Kind;

/// The old scripts' archives (and ours with gzip).
pub const ARCHIVE_SUFFIX: &str = ".tar.gz";
/// Every archive suffix a bucket or a local folder may hold (`.age`: sealed for recipients).
pub const ARCHIVE_SUFFIXES: [&str; 4] = [".tar.gz", ".tar.zst", ".tar.gz.age", ".tar.zst.age"];

/// How an archive is stored, which decides its suffix: the codec, and whether it is sealed with
/// age (`encrypt_recipients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub codec: Kind,
    pub sealed: bool,
}

impl Format {
    /// `.tar.gz`, `.tar.zst`, or either with `.age` after it.
    pub fn suffix(self) -> String {
        let age = if self.sealed {
            crate::crypt::SUFFIX
        } else {
            ""
        };
        format!("{}{age}", self.codec.suffix())
    }

    /// Every format, for finding what a folder holds.
    pub const ALL: [Format; 4] = [
        Format {
            codec: Kind::Gzip,
            sealed: false,
        },
        Format {
            codec: Kind::Zstd,
            sealed: false,
        },
        Format {
            codec: Kind::Gzip,
            sealed: true,
        },
        Format {
            codec: Kind::Zstd,
            sealed: true,
        },
    ];
}

impl From<Kind> for Format {
    fn from(codec: Kind) -> Self {
        Format {
            codec,
            sealed: false,
        }
    }
}
/// Full-mode backups: `mongodb_backup_titan_<YYYYmmddHHMM>` (fixed in the old code).
pub const FULL_PREFIX: &str = "mongodb_backup_titan_";
/// The old code's cycle folder prefix (config `cycle_prefix` may change it).
pub const DEFAULT_CYCLE_PREFIX: &str = "mongodb_cycle_backup_titan_";
pub const FULL_DIR: &str = "full_backup";
pub const INC_DIR: &str = "inc_backup";
pub const INCREMENT_PREFIX: &str = "oplog_";
pub const OPLOG_FILE: &str = "oplog.bson";
pub const MANIFEST_FILE: &str = "manifest.json";
const FULL_MANIFEST_SUFFIX: &str = ".manifest.json";

// ---- names -------------------------------------------------------------------------------------

/// `<prefix><YYYYmmddHHMMSS>`, local time, as the old scripts named cycles.
pub fn cycle_name(prefix: &str, now: DateTime<Local>) -> String {
    format!("{prefix}{}", now.format("%Y%m%d%H%M%S"))
}

/// `oplog_<YYYYmmddHHMMSS>`, local time.
pub fn increment_name(at: DateTime<Local>) -> String {
    format!("{INCREMENT_PREFIX}{}", at.format("%Y%m%d%H%M%S"))
}

/// `mongodb_backup_titan_<YYYYmmddHHMM>` as the old scripts named it, or with the seconds
/// appended (`…HHMMSS`) when a backup of that minute exists already.
pub fn full_backup_name(at: DateTime<Local>, with_seconds: bool) -> String {
    let stamp = if with_seconds {
        at.format("%Y%m%d%H%M%S")
    } else {
        at.format("%Y%m%d%H%M")
    };
    format!("{FULL_PREFIX}{stamp}")
}

/// Whether `name` is a cycle of this installation: its prefix and exactly the 14 digits of a
/// time, so that another installation's longer prefix (`…titan_1_…`) is never taken for ours.
pub fn is_cycle_name(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|d| d.len() == 14 && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The local time in a name `<prefix><YYYYmmddHHMM[SS]>`.
pub fn name_time(name: &str, prefix: &str) -> Option<NaiveDateTime> {
    let digits = name.strip_prefix(prefix)?;
    let padded = match digits.len() {
        14 => digits.to_string(),
        12 => format!("{digits}00"),
        _ => return None,
    };
    NaiveDateTime::parse_from_str(&padded, "%Y%m%d%H%M%S").ok()
}

/// `name_time` as `2015-11-24 14:11:33`.
pub fn name_time_text(name: &str, prefix: &str) -> Option<String> {
    name_time(name, prefix).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

// ---- bucket keys -------------------------------------------------------------------------------

/// Everything of one cycle is listed under this prefix.
pub fn cycle_prefix_of(cycle: &str) -> String {
    format!("{cycle}/")
}

pub fn cycle_full_key(cycle: &str, format: impl Into<Format>) -> String {
    format!("{cycle}/{FULL_DIR}{}", format.into().suffix())
}

pub fn increment_key(cycle: &str, name: &str, format: impl Into<Format>) -> String {
    format!("{cycle}/{INC_DIR}/{name}{}", format.into().suffix())
}

pub fn cycle_manifest_key(cycle: &str) -> String {
    format!("{cycle}/{MANIFEST_FILE}")
}

pub fn full_backup_key(name: &str, format: impl Into<Format>) -> String {
    format!("{name}{}", format.into().suffix())
}

/// `name` without its archive suffix, when it has one.
pub fn strip_archive_suffix(name: &str) -> Option<&str> {
    // Longest first: `.tar.gz.age` before `.tar.gz` cannot clash (a different ending), but the
    // order keeps that true whatever is added.
    ARCHIVE_SUFFIXES
        .iter()
        .rev()
        .find_map(|s| name.strip_suffix(s))
}

pub fn full_manifest_key(name: &str) -> String {
    format!("{name}{FULL_MANIFEST_SUFFIX}")
}

/// What a bucket key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key<'a> {
    CycleFull {
        cycle: &'a str,
    },
    Increment {
        cycle: &'a str,
        name: &'a str,
    },
    CycleManifest {
        cycle: &'a str,
    },
    /// Something else under a cycle's folder.
    CycleOther {
        cycle: &'a str,
    },
    FullBackup {
        name: &'a str,
    },
    FullManifest {
        name: &'a str,
    },
    /// Not ours (a shared bucket).
    Foreign,
}

impl<'a> Key<'a> {
    /// Parses a key; cycles are folders whose name starts with `cycle_prefix`.
    pub fn parse(key: &'a str, cycle_prefix: &str) -> Key<'a> {
        if let Some((cycle, rest)) = key.split_once('/') {
            if !cycle.starts_with(cycle_prefix) {
                return Key::Foreign;
            }
            if strip_archive_suffix(rest) == Some(FULL_DIR) {
                return Key::CycleFull { cycle };
            }
            if rest == MANIFEST_FILE {
                return Key::CycleManifest { cycle };
            }
            let increment = rest
                .strip_prefix(INC_DIR)
                .and_then(|r| r.strip_prefix('/'))
                .and_then(strip_archive_suffix)
                .filter(|n| n.starts_with(INCREMENT_PREFIX) && !n.contains('/'));
            return match increment {
                Some(name) => Key::Increment { cycle, name },
                None => Key::CycleOther { cycle },
            };
        }
        if !key.starts_with(FULL_PREFIX) {
            return Key::Foreign;
        }
        if let Some(name) = key.strip_suffix(FULL_MANIFEST_SUFFIX) {
            return Key::FullManifest { name };
        }
        match strip_archive_suffix(key) {
            Some(name) => Key::FullBackup { name },
            None => Key::Foreign,
        }
    }
}

// ---- local paths -------------------------------------------------------------------------------

pub fn full_dir(cycle_dir: &Path) -> PathBuf {
    cycle_dir.join(FULL_DIR)
}

pub fn increments_dir(cycle_dir: &Path) -> PathBuf {
    cycle_dir.join(INC_DIR)
}

pub fn increment_dir(cycle_dir: &Path, name: &str) -> PathBuf {
    increments_dir(cycle_dir).join(name)
}

pub fn oplog_file(increment_dir: &Path) -> PathBuf {
    increment_dir.join(OPLOG_FILE)
}

/// The archive of directory `dir`: `<dir>.tar.gz` (or `.tar.zst`, either with `.age`) beside it.
pub fn archive_path_for(dir: &Path, format: impl Into<Format>) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format.into().suffix());
    dir.with_file_name(name)
}

/// The archives of directory `dir` that exist, of any format.
pub fn existing_archives_of(dir: &Path) -> Vec<PathBuf> {
    Format::ALL
        .into_iter()
        .map(|f| archive_path_for(dir, f))
        .filter(|p| p.exists())
        .collect()
}

/// The folder an archive extracts to (and was made from): its path without the suffix.
pub fn dir_of_archive(archive: &Path) -> PathBuf {
    let name = archive.file_name().unwrap_or_default().to_string_lossy();
    archive.with_file_name(strip_archive_suffix(&name).unwrap_or(&name))
}

/// The names of the increment folders of a local cycle (`inc_backup/oplog_*/`), sorted.
pub fn local_increment_names(cycle_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(increments_dir(cycle_dir))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(INCREMENT_PREFIX))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let p = DEFAULT_CYCLE_PREFIX;
        let cycle = "mongodb_cycle_backup_titan_20151124141133";
        for kind in Format::ALL {
            assert_eq!(
                Key::parse(&cycle_full_key(cycle, kind), p),
                Key::CycleFull { cycle }
            );
            assert_eq!(
                Key::parse(&increment_key(cycle, "oplog_20151124150000", kind), p),
                Key::Increment {
                    cycle,
                    name: "oplog_20151124150000"
                }
            );
            assert_eq!(
                Key::parse(
                    &full_backup_key("mongodb_backup_titan_201512221438", kind),
                    p
                ),
                Key::FullBackup {
                    name: "mongodb_backup_titan_201512221438"
                }
            );
        }
        assert_eq!(
            Key::parse(&cycle_manifest_key(cycle), p),
            Key::CycleManifest { cycle }
        );
        assert_eq!(
            Key::parse(&format!("{cycle}/inc_backup/x.tar.gz"), p),
            Key::CycleOther { cycle }
        );
        let name = "mongodb_backup_titan_201512221438";
        assert_eq!(
            Key::parse(&full_manifest_key(name), p),
            Key::FullManifest { name }
        );
        assert_eq!(Key::parse("other/thing.tar.gz", p), Key::Foreign);
    }

    #[test]
    fn times_from_names() {
        assert_eq!(
            name_time_text("mongodb_backup_titan_201512221438", FULL_PREFIX).as_deref(),
            Some("2015-12-22 14:38:00")
        );
        assert_eq!(
            name_time_text("mongodb_backup_titan_20151222143807", FULL_PREFIX).as_deref(),
            Some("2015-12-22 14:38:07")
        );
        assert_eq!(
            name_time_text("oplog_20151124141133", INCREMENT_PREFIX).as_deref(),
            Some("2015-11-24 14:11:33")
        );
        assert_eq!(name_time("oplog_x", INCREMENT_PREFIX), None);
        // A name with seconds sorts after its minute's name and before the next minute's.
        let t = chrono::Local::now();
        let (minute, seconds) = (full_backup_name(t, false), full_backup_name(t, true));
        assert!(minute < seconds);
        assert!(seconds < full_backup_name(t + chrono::Duration::minutes(1), false));
    }
}
