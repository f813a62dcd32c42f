//! mongo-oss-backup: backs up MongoDB — full dumps in mongodump's format plus oplog increments —
//! into tar.gz archives stored in Aliyun OSS (or S3, or a local folder), verified, and restores
//! them. It replaces the old Python 2 `start.py` / `restore_inc.py` / `restore_full.py` scripts and
//! keeps their config.properties, state files and bucket layout.
//!
//! Module map:
//! - `config`: config.properties reader and typed settings (with the storage target).
//! - `position`: the one oplog position type (parse, print, serde forms).
//! - `layout`: every bucket key, local folder and name of the old layout, and the key parser.
//! - `chain`: the proof that a cycle restores (dump, then increments joined end to end).
//! - `archive`: streaming tar.gz create/extract with the old entry names and a tar-slip guard.
//! - `storage`: the `Storage` trait on OpenDAL (oss, s3, fs): verified uploads, downloads, listing.
//! - `mongo`: connection, mongodump-format dump and restore through the official driver.
//! - `manifest`: what each cycle's archives must be (size, CRC64, oplog range, per-collection hash).
//! - `state`, `lock`: the old scripts' state files and the run lock.
//! - `pipeline`: the flows (backups, restores, list, status, verify, prune) built from the parts above.
//! - `runtime`, `logging`, `progress`: the shared tokio runtime, plain log lines, progress bars.
//! - `hooks`: the fault tests' crash points and clock.
//! - `cli`: the `mongo-oss-backup` command line; `python`: the `_core` extension module.

pub mod archive;
pub mod chain;
pub mod cli;
pub mod config;
pub mod error;
pub mod hooks;
pub mod layout;
pub mod lock;
pub mod logging;
pub mod manifest;
pub mod mongo;
pub mod pipeline;
pub mod position;
pub mod progress;
pub mod runtime;
pub mod state;
pub mod storage;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, ErrorKind, Result};
