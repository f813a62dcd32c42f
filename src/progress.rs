//! Progress of long steps (dumping a collection, archiving, uploading, downloading, restoring,
//! replaying), reported to whoever watches this run: progress bars on a terminal (the CLI's
//! `Sink`), a Python callback, or nobody (a cron log gets its one line per step from the logger).
//!
//! Each flow is handed a `Progress` (no-op by default) and passes it down: two flows running at
//! once in one process (two Python threads) each report to their own watcher. The only global is
//! the terminal's line printer, which the CLI sets so that log lines do not tear its bars.

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

/// Where a flow reports its tasks: a sink, or nobody.
#[derive(Clone, Default)]
pub struct Progress {
    sink: Option<Arc<dyn Sink>>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.sink.is_some() {
            "Progress(reported)"
        } else {
            "Progress(none)"
        })
    }
}

impl Progress {
    pub fn new(sink: Arc<dyn Sink>) -> Self {
        Progress { sink: Some(sink) }
    }

    /// Nobody watches.
    pub fn none() -> Self {
        Progress::default()
    }

    pub fn task(&self, label: impl Into<String>, unit: Unit, total: Option<u64>) -> Task {
        Task::start(self.sink.clone(), label.into(), unit, total)
    }

    /// A byte-counting task a transfer's progress callback can update.
    pub fn transfer(&self, label: impl Into<String>, total: Option<u64>) -> Transfer {
        Transfer(Mutex::new(self.task(label, Unit::Bytes, total)))
    }
}

static NEXT_ID: Mutex<u64> = Mutex::new(1);
static CONSOLE: RwLock<Option<Arc<dyn Sink>>> = RwLock::new(None);

/// Log lines go through `sink` (a terminal's bars) until the guard is dropped.
pub fn set_console(sink: Arc<dyn Sink>) -> ConsoleGuard {
    *CONSOLE.write().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    ConsoleGuard
}

pub struct ConsoleGuard;

impl Drop for ConsoleGuard {
    fn drop(&mut self) {
        *CONSOLE.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Writes a log line through the terminal's bars (so they are redrawn below it), or to stderr.
pub fn log_line(line: &str) {
    match CONSOLE.read().unwrap_or_else(|e| e.into_inner()).clone() {
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
    fn start(sink: Option<Arc<dyn Sink>>, label: String, unit: Unit, total: Option<u64>) -> Task {
        let id = {
            let mut next = NEXT_ID.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            *next
        };
        let now = Instant::now();
        let task = Task {
            sink,
            id,
            label,
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
    /// Bytes done so far.
    pub fn report(&self, bytes: u64) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_bytes(bytes);
    }

    /// Ends a transfer whose size was not known when it started (a streamed upload).
    pub fn finish_at(self, size: u64) {
        let mut task = self.0.into_inner().unwrap_or_else(|e| e.into_inner());
        task.total = Some(size);
        task.bytes = size;
        task.finish();
    }
}
