//! The PyO3 module `mongo_oss_backup._core`: thin wrappers over the core with the GIL released
//! while they run, and one Python exception class per `ErrorKind`, all under `MongoOssBackupError`.

use std::path::PathBuf;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::config;
use crate::error::{Error, ErrorKind};
use crate::progress::Progress;
use crate::storage::{self, ObjectInfo};

/// The exception classes, each declared once: class, parent, the error kind it stands for (the
/// base classes of a family stand for the family's "other" kind), and its doc.
macro_rules! exceptions {
    ($($class:ident($parent:ty) $(= $kind:ident)?: $doc:literal;)*) => {
        $(create_exception!(_core, $class, $parent, $doc);)*

        fn exception_for(kind: ErrorKind, message: String) -> PyErr {
            match kind {
                $($(ErrorKind::$kind => $class::new_err(message),)?)*
            }
        }

        fn add_exceptions(m: &Bound<'_, PyModule>) -> PyResult<()> {
            $(m.add(stringify!($class), m.py().get_type::<$class>())?;)*
            Ok(())
        }
    };
}

exceptions! {
    MongoOssBackupError(PyException): "Base class of every mongo-oss-backup error.";
    ConfigError(MongoOssBackupError) = Config: "config.properties or an argument is wrong.";
    StorageError(MongoOssBackupError) = Storage: "The bucket failed (base of the storage errors).";
    StorageAuthError(StorageError) = StorageAuth: "The storage refused the credentials.";
    StorageNotFoundError(StorageError) = StorageNotFound: "The bucket or object does not exist.";
    StorageUnreachableError(StorageError) = StorageUnreachable: "The storage endpoint cannot be reached.";
    IntegrityError(MongoOssBackupError) = Integrity: "Stored data does not match what was recorded.";
    ArchiveError(MongoOssBackupError) = Archive: "A tar.gz archive is malformed or unsafe.";
    EncryptionError(MongoOssBackupError) = Encryption: "An encrypted backup needs its age identity (missing or another one).";
    LocalIOError(MongoOssBackupError) = Io: "A local file-system failure (disk full, permissions).";
    MongoError(MongoOssBackupError) = Mongo: "MongoDB failed (base of the MongoDB errors).";
    MongoUnreachableError(MongoError) = MongoUnreachable: "MongoDB cannot be reached.";
    MongoAuthError(MongoError) = MongoAuth: "MongoDB refused the user name or password.";
    MongoUnauthorizedError(MongoError) = MongoUnauthorized: "The MongoDB user lacks a privilege.";
    MongoNotFoundError(MongoError) = MongoNotFound: "The database does not exist.";
    BusyError(MongoOssBackupError) = Busy: "Another run holds the lock.";
    InternalError(MongoOssBackupError) = Internal: "An unexpected internal failure.";
}

/// The error as its Python class; `context` (key, path, namespace, position…) as an attribute.
fn to_py(e: Error) -> PyErr {
    let err = exception_for(e.kind(), e.to_string());
    Python::attach(|py| {
        let context = PyDict::new(py);
        for (k, v) in e.context() {
            let _ = context.set_item(*k, v);
        }
        let _ = err.value(py).setattr("context", context);
    });
    err
}

/// The settings of a call that writes (restore, verify --deep), as `db_user` when given (its
/// password: `db_password`, else `MONGO_OSS_RESTORE_PASSWD`), opening encrypted backups with the
/// age identity file `identity` (else `MONGO_OSS_AGE_IDENTITY`).
fn restore_settings(
    config: &std::path::Path,
    db_user: Option<String>,
    db_password: Option<String>,
    identity: Option<PathBuf>,
) -> Result<config::Settings, Error> {
    let mut settings = api_settings(config)?;
    if let Some(user) = db_user {
        settings.restore_as(&user, db_password.map(crate::secret::Secret::new))?;
    }
    if let Some(file) = identity {
        settings.use_identity_file(&file)?;
    }
    Ok(settings)
}

fn load(path: &std::path::Path) -> Result<config::Loaded, Error> {
    config::load(path, &|k| std::env::var(k).ok())
}

/// Runs the command line (argv[0] is the program name) and returns its exit code.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> i32 {
    let args = argv.into_iter().map(Into::into).collect();
    py.detach(|| crate::cli::main(args))
}

/// The effective settings of a config file, as a JSON text (secrets hidden unless asked).
#[pyfunction]
#[pyo3(signature = (path, *, show_secrets = false))]
fn check_config(
    py: Python<'_>,
    path: PathBuf,
    show_secrets: bool,
) -> PyResult<(String, Vec<String>)> {
    let loaded = py.detach(|| load(&path)).map_err(to_py)?;
    Ok((
        loaded.settings.to_json(show_secrets).to_string(),
        loaded.warnings,
    ))
}

/// Loads a config for an API call: warnings become log lines, the log level is the config's.
fn api_settings(path: &std::path::Path) -> Result<config::Settings, Error> {
    let loaded = load(path)?;
    crate::logging::init(loaded.settings.log_level);
    for w in &loaded.warnings {
        log::warn!("{w}");
    }
    Ok(loaded.settings)
}

/// Runs `f` without the GIL, handing it the call's own progress: `progress` (a callable taking
/// one dict) receives this call's tasks only, whatever other threads run at the same time.
fn detached<T: Send>(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
    f: impl FnOnce(&Progress) -> Result<T, Error> + Send,
) -> PyResult<T> {
    let progress = match progress {
        Some(callback) => Progress::new(std::sync::Arc::new(PyProgress {
            callback,
            failed: std::sync::atomic::AtomicBool::new(false),
        })),
        None => Progress::none(),
    };
    py.detach(|| f(&progress)).map_err(to_py)
}

fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Calls a Python callable with each progress update, as a dict.
struct PyProgress {
    callback: Py<PyAny>,
    failed: std::sync::atomic::AtomicBool,
}

impl crate::progress::Sink for PyProgress {
    fn update(&self, u: &crate::progress::Update<'_>) {
        use std::sync::atomic::Ordering;
        if self.failed.load(Ordering::Relaxed) {
            return;
        }
        Python::attach(|py| {
            let call = || -> PyResult<()> {
                let d = PyDict::new(py);
                d.set_item("task", u.label)?;
                d.set_item(
                    "unit",
                    match u.unit {
                        crate::progress::Unit::Documents => "documents",
                        crate::progress::Unit::Bytes => "bytes",
                    },
                )?;
                d.set_item("items", u.items)?;
                d.set_item("bytes", u.bytes)?;
                d.set_item("total", u.total)?;
                d.set_item("finished", u.finished)?;
                d.set_item("seconds", u.seconds)?;
                self.callback.call1(py, (d,))?;
                Ok(())
            };
            if let Err(e) = call() {
                // A broken callback must not break the backup: say so once, then stop calling it.
                self.failed.store(true, Ordering::Relaxed);
                log::warn!("the progress callback raised {e}; it is no longer called");
            }
        });
    }
}

/// One backup run as the config says (under the run lock); the result as JSON text.
#[pyfunction]
#[pyo3(signature = (*, config, progress = None))]
fn backup_json(py: Python<'_>, config: PathBuf, progress: Option<Py<PyAny>>) -> PyResult<String> {
    detached(py, progress, |progress| {
        let settings = api_settings(&config)?;
        crate::pipeline::backup::run(&settings, progress).map(|o| o.to_json().to_string())
    })
}

/// Restores a full backup (`full`) or a cycle (`cycle`); the report as JSON text.
#[pyfunction]
#[pyo3(signature = (*, config, cycle = None, full = None, until = None, target_db = None,
    dry_run = false, drop = false, oplog_only = false, skip_unknown = false, allow_gap = false,
    local_dir = None, downloaded = false, download_first = false, db_user = None, db_password = None, progress = None,
    ns_include = Vec::new(), ns_exclude = Vec::new(), ns_from = Vec::new(), ns_to = Vec::new(),
    identity = None))]
#[allow(clippy::too_many_arguments)]
fn restore_json(
    py: Python<'_>,
    config: PathBuf,
    cycle: Option<String>,
    full: Option<String>,
    until: Option<String>,
    target_db: Option<String>,
    dry_run: bool,
    drop: bool,
    oplog_only: bool,
    skip_unknown: bool,
    allow_gap: bool,
    local_dir: Option<PathBuf>,
    downloaded: bool,
    download_first: bool,
    db_user: Option<String>,
    db_password: Option<String>,
    progress: Option<Py<PyAny>>,
    ns_include: Vec<String>,
    ns_exclude: Vec<String>,
    ns_from: Vec<String>,
    ns_to: Vec<String>,
    identity: Option<PathBuf>,
) -> PyResult<String> {
    use crate::pipeline::{restore_full, restore_inc};
    let ns = crate::pipeline::selective::NsOptions {
        include: ns_include,
        exclude: ns_exclude,
        from: ns_from,
        to: ns_to,
    };
    detached(py, progress, |progress| {
        let settings = restore_settings(&config, db_user, db_password, identity)?;
        let local_temp = local_dir.unwrap_or_else(|| settings.db_backup_root_path.join("restore"));
        match (cycle, full) {
            (Some(cycle), None) => {
                let req = restore_inc::RestoreIncRequest {
                    cycle,
                    local_temp,
                    already_downloaded: downloaded,
                    download_first,
                    drop_existing: drop,
                    target_db,
                    until: until.as_deref().map(crate::cli::parse_until).transpose()?,
                    dry_run,
                    skip_unknown,
                    oplog_only,
                    allow_gap,
                    ns,
                };
                let report = crate::runtime::block_on(restore_inc::run(&settings, &req, progress))?;
                Ok(json_text(&report))
            }
            (None, Some(name)) => {
                let req = restore_full::RestoreFullRequest {
                    name,
                    suffix: None,
                    local_temp,
                    already_downloaded: downloaded,
                    download_first,
                    drop_existing: drop,
                    target_db,
                    ns,
                    dry_run,
                };
                let report =
                    crate::runtime::block_on(restore_full::run(&settings, &req, progress))?;
                Ok(json_text(&report))
            }
            _ => Err(Error::config(
                "restore needs exactly one of cycle= or full=",
            )),
        }
    })
}

/// The bucket's cycles and full backups, as JSON text.
#[pyfunction]
#[pyo3(signature = (*, config))]
fn list_json(py: Python<'_>, config: PathBuf) -> PyResult<String> {
    detached(py, None, |_| {
        let settings = api_settings(&config)?;
        let catalog = crate::runtime::block_on(crate::pipeline::catalog::list(&settings))?;
        Ok(json_text(&catalog))
    })
}

/// The installation's status, as JSON text.
#[pyfunction]
#[pyo3(signature = (*, config, max_age_seconds, interval_seconds = None, prometheus = None))]
fn status_json(
    py: Python<'_>,
    config: PathBuf,
    max_age_seconds: i64,
    interval_seconds: Option<i64>,
    prometheus: Option<PathBuf>,
) -> PyResult<String> {
    detached(py, None, |_| {
        let settings = api_settings(&config)?;
        let req = crate::pipeline::status::StatusRequest {
            max_age_seconds,
            interval_seconds,
            oplog: true,
        };
        let st = crate::runtime::block_on(crate::pipeline::status::run(&settings, &req))?;
        if let Some(path) = &prometheus {
            crate::pipeline::status::write_metrics(&settings, &st, path)?;
        }
        Ok(json_text(&st))
    })
}

/// Verifies a backup against its manifest (and `deep`: by a scratch restore), as JSON text.
#[pyfunction]
#[pyo3(signature = (*, config, name = None, deep = false, local_dir = None, db_user = None,
    db_password = None, progress = None, identity = None))]
#[allow(clippy::too_many_arguments)]
fn verify_json(
    py: Python<'_>,
    config: PathBuf,
    name: Option<String>,
    deep: bool,
    local_dir: Option<PathBuf>,
    db_user: Option<String>,
    db_password: Option<String>,
    progress: Option<Py<PyAny>>,
    identity: Option<PathBuf>,
) -> PyResult<String> {
    detached(py, progress, |progress| {
        let settings = restore_settings(&config, db_user, db_password, identity)?;
        let req = crate::pipeline::verify::VerifyRequest {
            name,
            deep,
            local_dir,
        };
        let report =
            crate::runtime::block_on(crate::pipeline::verify::run(&settings, &req, progress))?;
        Ok(json_text(&report))
    })
}

/// Deletes the cycles older than the `keep` newest, as JSON text.
#[pyfunction]
#[pyo3(signature = (*, config, keep, dry_run = false))]
fn prune_json(py: Python<'_>, config: PathBuf, keep: usize, dry_run: bool) -> PyResult<String> {
    detached(py, None, |_| {
        let settings = api_settings(&config)?;
        let report =
            crate::runtime::block_on(crate::pipeline::prune::run(&settings, keep, dry_run))?;
        Ok(json_text(&report))
    })
}

/// restore_full.py: settings as (key, value) pairs; prints the summary and returns the exit code.
#[pyfunction]
#[pyo3(signature = (pairs, *, name, suffix, local_temp, downloaded, drop, target_db = None))]
#[allow(clippy::too_many_arguments)]
fn run_restore_full(
    py: Python<'_>,
    pairs: Vec<(String, String)>,
    name: String,
    suffix: String,
    local_temp: PathBuf,
    downloaded: bool,
    drop: bool,
    target_db: Option<String>,
) -> i32 {
    py.detach(|| {
        crate::cli::script_restore_full(
            &pairs,
            crate::pipeline::restore_full::RestoreFullRequest {
                name,
                suffix: Some(suffix).filter(|s| !s.is_empty()),
                local_temp,
                already_downloaded: downloaded,
                // The old script left the extracted backup for has_download_to_local=True.
                download_first: true,
                drop_existing: drop,
                target_db,
                ns: Default::default(),
                dry_run: false,
            },
        )
    })
}

/// restore_inc.py: settings as (key, value) pairs; prints the summary and returns the exit code.
#[pyfunction]
#[pyo3(signature = (pairs, *, cycle, local_temp, downloaded, drop, until = String::new(), target_db = None, dry_run = false, skip_unknown = false, allow_gap = false))]
#[allow(clippy::too_many_arguments)]
fn run_restore_inc(
    py: Python<'_>,
    pairs: Vec<(String, String)>,
    cycle: String,
    local_temp: PathBuf,
    downloaded: bool,
    drop: bool,
    until: String,
    target_db: Option<String>,
    dry_run: bool,
    skip_unknown: bool,
    allow_gap: bool,
) -> i32 {
    py.detach(|| {
        crate::cli::script_restore_inc(
            &pairs,
            crate::pipeline::restore_inc::RestoreIncRequest {
                cycle,
                local_temp,
                already_downloaded: downloaded,
                // The old script left the extracted cycle for has_download_to_local=True.
                download_first: true,
                drop_existing: drop,
                target_db,
                until: None,
                dry_run,
                skip_unknown,
                oplog_only: false,
                allow_gap,
                ns: Default::default(),
            },
            &until,
        )
    })
}

/// Archives directory `src` into `dest` (entries `<basename>/...`) with gzip or zstd at `level`
/// on `threads` threads (0 = every core), sealed with age for `recipients` (`age1…` keys or a
/// file of them) when given; returns its statistics.
#[pyfunction]
#[pyo3(signature = (src, dest, *, level = 6, compression = "gzip", threads = 1, recipients = None))]
#[allow(clippy::too_many_arguments)]
fn create_archive<'py>(
    py: Python<'py>,
    src: PathBuf,
    dest: PathBuf,
    level: u32,
    compression: &str,
    threads: usize,
    recipients: Option<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let recipients = recipients
        .map(|r| crate::crypt::Recipients::parse(&r))
        .transpose()
        .map_err(|why| ConfigError::new_err(format!("recipients: {why}")))?;
    let kind = match compression {
        "gzip" => crate::codec::Kind::Gzip,
        "zstd" => crate::codec::Kind::Zstd,
        other => {
            return Err(ConfigError::new_err(format!(
                "compression \"{other}\" is not gzip or zstd"
            )))
        }
    };
    let level = match kind {
        crate::codec::Kind::Gzip => level.min(9),
        crate::codec::Kind::Zstd => level.clamp(1, 19),
    };
    let codec = crate::codec::Codec {
        kind,
        level,
        threads,
    };
    let stats = py
        .detach(|| {
            crate::archive::create(&src, &dest, &codec, recipients.as_ref(), &Progress::none())
        })
        .map_err(to_py)?;
    let d = PyDict::new(py);
    d.set_item("files", stats.files)?;
    d.set_item("input_bytes", stats.input_bytes)?;
    d.set_item("archive_bytes", stats.archive_bytes)?;
    Ok(d)
}

/// Extracts an archive into `dest`, opening a sealed one with the age identity in file
/// `identity` (else `MONGO_OSS_AGE_IDENTITY`); returns the top-level names it held.
#[pyfunction]
#[pyo3(signature = (archive, dest, *, identity = None))]
fn extract_archive(
    py: Python<'_>,
    archive: PathBuf,
    dest: PathBuf,
    identity: Option<PathBuf>,
) -> PyResult<Vec<String>> {
    let identity = match identity {
        Some(p) => Some(crate::crypt::Identity::from_file(&p).map_err(to_py)?),
        None => crate::crypt::Identity::from_env().map_err(to_py)?,
    };
    py.detach(|| crate::archive::extract(&archive, &dest, identity.as_ref()))
        .map_err(to_py)
}

/// The bucket a config file names (`storage_url`, or OSS endpoint + bucket).
#[pyclass(module = "mongo_oss_backup._core")]
struct Storage {
    inner: Box<dyn storage::Storage>,
}

fn info_dict<'py>(py: Python<'py>, info: &ObjectInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("key", &info.key)?;
    d.set_item("size", info.size)?;
    d.set_item("crc64", info.crc64)?;
    d.set_item("etag", &info.etag)?;
    d.set_item("last_modified", info.last_modified)?;
    Ok(d)
}

#[pymethods]
impl Storage {
    #[new]
    #[pyo3(signature = (*, config))]
    fn new(py: Python<'_>, config: PathBuf) -> PyResult<Self> {
        let settings = py.detach(|| load(&config)).map_err(to_py)?.settings;
        let target = settings.storage.as_ref().ok_or_else(|| {
            ConfigError::new_err(format!(
                "{}: is_upload_to_oss=0, so no bucket is configured",
                config.display()
            ))
        })?;
        let inner = storage::open(target, &settings.storage_options).map_err(to_py)?;
        Ok(Storage { inner })
    }

    /// Uploads and verifies; returns {"key", "size", "crc64"}.
    fn put_file<'py>(
        &self,
        py: Python<'py>,
        local: PathBuf,
        key: String,
    ) -> PyResult<Bound<'py, PyDict>> {
        let done = py
            .detach(|| crate::runtime::block_on(self.inner.put_file(&local, &key, &|_| {})))
            .map_err(to_py)?;
        let d = PyDict::new(py);
        d.set_item("key", done.key)?;
        d.set_item("size", done.size)?;
        d.set_item("crc64", done.crc64)?;
        Ok(d)
    }

    /// Downloads to a local file; returns the CRC64 of what was written.
    fn get_file(&self, py: Python<'_>, key: String, local: PathBuf) -> PyResult<u64> {
        py.detach(|| crate::runtime::block_on(self.inner.get_file(&key, &local, &|_| {})))
            .map_err(to_py)
    }

    fn head<'py>(&self, py: Python<'py>, key: String) -> PyResult<Option<Bound<'py, PyDict>>> {
        let info = py
            .detach(|| crate::runtime::block_on(self.inner.head(&key)))
            .map_err(to_py)?;
        info.map(|i| info_dict(py, &i)).transpose()
    }

    #[pyo3(signature = (prefix = String::new()))]
    fn list<'py>(&self, py: Python<'py>, prefix: String) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let infos = py
            .detach(|| crate::runtime::block_on(self.inner.list(&prefix)))
            .map_err(to_py)?;
        infos.iter().map(|i| info_dict(py, i)).collect()
    }

    fn delete(&self, py: Python<'_>, keys: Vec<String>) -> PyResult<()> {
        py.detach(|| crate::runtime::block_on(self.inner.delete(&keys)))
            .map_err(to_py)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    crate::logging::init(config::LogLevel::Info);
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    add_exceptions(m)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(check_config, m)?)?;
    m.add_function(wrap_pyfunction!(backup_json, m)?)?;
    m.add_function(wrap_pyfunction!(restore_json, m)?)?;
    m.add_function(wrap_pyfunction!(list_json, m)?)?;
    m.add_function(wrap_pyfunction!(status_json, m)?)?;
    m.add_function(wrap_pyfunction!(verify_json, m)?)?;
    m.add_function(wrap_pyfunction!(prune_json, m)?)?;
    m.add_function(wrap_pyfunction!(run_restore_full, m)?)?;
    m.add_function(wrap_pyfunction!(run_restore_inc, m)?)?;
    m.add_function(wrap_pyfunction!(create_archive, m)?)?;
    m.add_function(wrap_pyfunction!(extract_archive, m)?)?;
    m.add_class::<Storage>()?;
    Ok(())
}
