//! Test hooks, read from the environment, that let the fault tests stop a run between two exact
//! steps and run it at a chosen wall-clock time. Unset, each costs one environment lookup. A leaf
//! module: every layer may call it, it calls nothing.

use chrono::{DateTime, Local, NaiveDateTime};

/// When `MONGO_OSS_BACKUP_TEST_CRASH` names this point, the process dies on the spot (abort: no
/// destructor, no cleanup), as under kill -9.
pub fn crash_point(name: &str) {
    if std::env::var("MONGO_OSS_BACKUP_TEST_CRASH").is_ok_and(|v| v == name) {
        eprintln!("test crash at {name}");
        std::process::abort();
    }
}

/// The wall-clock time a backup run names things by: now, or `MONGO_OSS_BACKUP_TEST_CLOCK`
/// (`YYYY-mm-dd HH:MM:SS`, local time) to replay a clock that stands still or steps back.
pub fn now() -> DateTime<Local> {
    std::env::var("MONGO_OSS_BACKUP_TEST_CLOCK")
        .ok()
        .and_then(|t| NaiveDateTime::parse_from_str(t.trim(), "%Y-%m-%d %H:%M:%S").ok())
        .and_then(|t| t.and_local_timezone(Local).earliest())
        .unwrap_or_else(Local::now)
}

/// Tests only: the address of the ECS instance metadata service (`MONGO_OSS_BACKUP_TEST_ECS_METADATA`,
/// e.g. `http://127.0.0.1:PORT`) instead of 100.100.100.200.
pub fn ecs_metadata_endpoint() -> Option<String> {
    std::env::var("MONGO_OSS_BACKUP_TEST_ECS_METADATA")
        .ok()
        .filter(|v| !v.is_empty())
}
