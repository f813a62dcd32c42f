//! mongo-oss-backup: backs up MongoDB — full dumps in mongodump's format plus oplog increments —
//! into tar.gz archives stored in Aliyun OSS (or S3, or a local folder), verified, and restores
//! them. It replaces the old Python 2 `start.py` / `restore_inc.py` / `restore_full.py` scripts and
//! keeps their config.properties, state files and bucket layout.
//!
//! Module map (lower layers first; each file opens with what it owns):
//! - `error`, `secret`, `private`, `position`, `layout`, `hooks`: the error type, secrets that never
//!   print, owner-only files and folders, the one oplog position type, every key/folder/name of the
//!   old layout, the tests' hooks.
//! - `config`: config.properties (its keys listed once in `config::keys`) resolved once into
//!   `Settings`: the mode, the MongoDB target, the storage target and its options.
//! - `storage`: the `Storage` trait on OpenDAL (oss, s3, fs) and its target: verified transfers.
//! - `archive`, `codec`: streaming tar archives with the old entry names (no escape, no links),
//!   gzip on every core or zstd, recognised by magic bytes.
//! - `mongo`: the official driver: connect, dump, restore, inspect, oplog capture, replay.
//! - `namespace`: restores' `--ns-*` selections and renames, and collections followed through an
//!   oplog's renames and drops.
//! - `manifest`: what each cycle's archives must be (size, CRC64, ranges, per-collection hash).
//! - `chain`: the proof that a cycle restores (dump, then increments joined end to end).
//! - `state`, `lock`: the old scripts' state files and the run lock; `metrics`: the Prometheus
//!   textfile format.
//! - `progress`: the handle flows report progress through; `runtime`, `logging`.
//! - `pipeline`: the flows (backups, restores, list, status, verify, prune), steps only.
//! - `cli`: the `mongo-oss-backup` command line and its terminal bars; `python`: the `_core`
//!   extension module.

pub mod archive;
pub mod chain;
pub mod cli;
pub mod codec;
pub mod config;
pub mod crypt;
pub mod error;
pub mod hooks;
pub mod layout;
pub mod lock;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod mongo;
pub mod namespace;
pub mod pipeline;
pub mod position;
pub mod private;
pub mod progress;
pub mod runtime;
pub mod secret;
pub mod state;
pub mod storage;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, ErrorKind, Result};
