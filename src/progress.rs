//! Progress of long steps (dumping a collection, archiving, uploading, downloading, restoring,
//! replaying), reported to whoever watches this run: progress bars on a terminal, a Python
//! callback, or nobody (a cron log gets its one line per step from the logger instead).
//!
//! The sink is process-wide and installed for the length of one command (`install`): the run lock
//! already makes one backup per installation at a time, and a global keeps the engine's functions
//! free of a progress parameter on every signature.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// What a task counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Documents (or oplog entries), with their bytes.
    Documents,
    /// Bytes of a file or transfer.
    Bytes,
}

/// One report about one task.
#[derive(Debug, Clone)]
pub struct Update<'a> {
    pub id: u64,
    /// e.g. `dump titan.users`, `upload <key>`.
    pub label: &'a str,
    pub unit: Unit,
    /// Documents or entries done (`Unit::Documents`).
    pub items: u64,
    pub bytes: u64,
    /// Bytes expected, when known (transfers).
    pub total: Option<u64>,
    pub finished: bool,
    pub seconds: f64,
}

pub trait Sink: Send + Sync {
    fn update(&self, update: &Update<'_>);
    /// Prints a log line without tearing a bar apart.
    fn println(&self, line: &str) {
        eprint!("{line}");
    }
}

static SINK: RwLock<Option<Arc<dyn Sink>>> = RwLock::new(None);
static NEXT_ID: Mutex<u64> = Mutex::new(1);

/// Installs `sink` until the guard is dropped.
pub fn install(sink: Arc<dyn Sink>) -> Guard {
    *SINK.write().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    Guard
}

pub struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        *SINK.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

fn current() -> Option<Arc<dyn Sink>> {
    SINK.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Writes a log line through the sink (so bars are redrawn below it), or to stderr.
pub fn log_line(line: &str) {
    match current() {
        Some(sink) => sink.println(line),
        None => eprint!("{line}"),
    }
}

/// A running task. Reports are throttled (10 per second) so that counting each document costs
/// next to nothing; the last one is always sent by `finish` (or on drop).
pub struct Task {
    sink: Option<Arc<dyn Sink>>,
    id: u64,
    label: String,
    unit: Unit,
    items: u64,
    bytes: u64,
    total: Option<u64>,
    started: Instant,
    last: Instant,
    done: bool,
}

const EVERY: Duration = Duration::from_millis(100);

impl Task {
    pub fn start(label: impl Into<String>, unit: Unit, total: Option<u64>) -> Task {
        let sink = current();
        let id = {
            let mut next = NEXT_ID.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            *next
        };
        let now = Instant::now();
        let task = Task {
            sink,
            id,
            label: label.into(),
            unit,
            items: 0,
            bytes: 0,
            total,
            started: now,
            last: now,
            done: false,
        };
        task.send(false);
        task
    }

    /// Adds one document (or entry) of `bytes` bytes.
    pub fn add(&mut self, items: u64, bytes: u64) {
        self.items += items;
        self.bytes += bytes;
        self.tick();
    }

    /// Sets the bytes done so far (transfers report a running total).
    pub fn set_bytes(&mut self, bytes: u64) {
        self.bytes = bytes;
        self.tick();
    }

    fn tick(&mut self) {
        if self.sink.is_some() && self.last.elapsed() >= EVERY {
            self.last = Instant::now();
            self.send(false);
        }
    }

    pub fn finish(mut self) {
        self.send(true);
        self.done = true;
    }

    fn send(&self, finished: bool) {
        if let Some(sink) = &self.sink {
            sink.update(&Update {
                id: self.id,
                label: &self.label,
                unit: self.unit,
                items: self.items,
                bytes: self.bytes,
                total: self.total,
                finished,
                seconds: self.started.elapsed().as_secs_f64(),
            });
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if !self.done {
            self.send(true);
        }
    }
}

/// A byte-counting task that a transfer's progress callback (`Fn(u64)`, shared) can update.
pub struct Transfer(Mutex<Task>);

impl Transfer {
    pub fn start(label: impl Into<String>, total: Option<u64>) -> Transfer {
        Transfer(Mutex::new(Task::start(label, Unit::Bytes, total)))
    }

    /// Bytes done so far.
    pub fn report(&self, bytes: u64) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_bytes(bytes);
    }
}

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

impl Sink for TerminalBars {
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
