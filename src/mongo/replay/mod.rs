//! Oplog replay through ordinary commands (never applyOps): `update` turns update entries into
//! whole documents, `engine` applies entries in order with batching.

pub mod engine;
pub mod update;
