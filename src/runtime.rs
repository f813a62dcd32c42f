//! The one tokio runtime of the engine, behind a blocking API: the CLI and the Python layer call
//! plain functions; async stays inside the crate.

use std::future::Future;
use std::sync::OnceLock;

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// Runs `future` to completion on the shared multi-threaded runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("mongo-oss-backup")
                .build()
                .expect("cannot start the tokio runtime")
        })
        .block_on(future)
}
