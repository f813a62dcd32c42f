//! MongoDB through the official driver: connecting (`connect`), mongodump's file layout (`names`,
//! `metadata`, `dump_dir`), dumping (`dump`) and restoring (`restore`), reading back what a database holds
//! (`inspect`), the oplog (`oplog`) and its replay (`replay`). No mongodump/mongorestore binaries and
//! no subprocess, so credentials never appear on a command line.

pub mod bson_file;
pub mod connect;
pub mod dump;
pub mod dump_dir;
pub mod indexes;
pub mod inspect;
pub mod metadata;
pub mod names;
pub mod oplog;
pub mod replay;
pub mod restore;
pub mod staged;

pub use connect::{connect, Mongo, MongoTarget};
