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
            // Third-party crates only speak up when something is wrong; the certificate verifier's
            // complaint comes back to us as the request's error, which we report in our words.
            && (metadata.target().starts_with("_core")
                || (metadata.level() <= log::Level::Warn
                    && !metadata.target().starts_with("rustls_platform_verifier")))
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

/// A line for the user outside the logger (`error: …`, `warning: …`): on a terminal as it is; in a
/// log file (cron appends stderr to one) with the time first, like every log line, so that a
/// failure can be dated.
pub fn user_line(text: &str) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        crate::progress::log_line(&format!("{text}\n"));
    } else {
        let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S");
        crate::progress::log_line(&format!("{now} {text}\n"));
    }
}

/// A time (seconds since the epoch) as `2026-12-01 14:03:26 UTC`.
pub fn utc_text(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// `n thing` or `n things`.
pub fn count(n: u64, thing: &str) -> String {
    match n {
        1 => format!("1 {thing}"),
        _ if thing.ends_with(['x', 's']) => format!("{n} {thing}es"),
        _ => format!("{n} {thing}s"),
    }
}

/// A size in the unit that reads best: `612 B`, `4.1 kB`, `12.3 MB`, `1.07 GB` (decimal units).
pub fn size(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.2} GB", n as f64 / 1e9),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_right() {
        assert_eq!(count(1, "collection"), "1 collection");
        assert_eq!(count(0, "document"), "0 documents");
        assert_eq!(count(2, "failed index"), "2 failed indexes");
        assert_eq!(size(4_096), "4.1 kB");
    }
}
