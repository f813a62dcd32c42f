//! Progress bars on a terminal (indicatif), the CLI's progress sink: one bar per running task,
//! removed when it ends; log lines are printed above them.

use std::sync::Mutex;

use crate::progress::{Unit, Update};

/// Progress bars on a terminal (stderr), one per running task, removed when it ends.
pub struct TerminalBars {
    multi: indicatif::MultiProgress,
    bars: Mutex<std::collections::HashMap<u64, indicatif::ProgressBar>>,
}

impl TerminalBars {
    pub fn new() -> Self {
        TerminalBars {
            multi: indicatif::MultiProgress::with_draw_target(
                indicatif::ProgressDrawTarget::stderr_with_hz(10),
            ),
            bars: Mutex::new(Default::default()),
        }
    }
}

impl Default for TerminalBars {
    fn default() -> Self {
        Self::new()
    }
}

impl crate::progress::Sink for TerminalBars {
    fn update(&self, u: &Update<'_>) {
        use indicatif::{ProgressBar, ProgressStyle};
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        if u.finished {
            if let Some(bar) = bars.remove(&u.id) {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
            return;
        }
        let bar = bars.entry(u.id).or_insert_with(|| {
            let (bar, template) = match (u.unit, u.total) {
                (Unit::Bytes, Some(total)) => (
                    ProgressBar::new(total),
                    "{msg:40!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                ),
                (Unit::Bytes, None) => (
                    ProgressBar::new_spinner(),
                    "{spinner} {msg:40!} {bytes} {bytes_per_sec}",
                ),
                (Unit::Documents, _) => (
                    ProgressBar::new_spinner(),
                    "{spinner} {msg:40!} {human_pos} docs {per_sec} {prefix}",
                ),
            };
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bar = self.multi.add(bar.with_style(style));
            bar.set_message(u.label.to_string());
            bar
        });
        match u.unit {
            Unit::Bytes => bar.set_position(u.bytes),
            Unit::Documents => {
                bar.set_position(u.items);
                bar.set_prefix(format!("{:.1} MB", u.bytes as f64 / 1e6));
            }
        }
    }

    fn println(&self, line: &str) {
        self.multi.suspend(|| eprint!("{line}"));
    }
}
