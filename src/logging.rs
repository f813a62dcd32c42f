//! Log lines on stderr: one plain line per event, timestamped in local time, so that a cron log
//! file reads well. No colours and no control characters; secrets never reach a log call.

use std::sync::OnceLock;

use crate::config::LogLevel;

struct LineLogger;

static LOGGER: LineLogger = LineLogger;
static INSTALLED: OnceLock<()> = OnceLock::new();

impl log::Log for LineLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
            // Third-party crates only speak up when something is wrong.
            && (metadata.target().starts_with("_core") || metadata.level() <= log::Level::Warn)
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S");
        let line = format!("{now} {:<5} {}\n", record.level(), record.args());
        crate::progress::log_line(&line);
    }

    fn flush(&self) {}
}

/// Installs the logger once and sets the level (later calls only change the level).
pub fn init(level: LogLevel) {
    INSTALLED.get_or_init(|| {
        let _ = log::set_logger(&LOGGER);
    });
    log::set_max_level(match level {
        LogLevel::Error => log::LevelFilter::Error,
        LogLevel::Warn => log::LevelFilter::Warn,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Debug => log::LevelFilter::Debug,
    });
}
