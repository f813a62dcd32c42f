//! The one error type of the engine: a small `ErrorKind` (what went wrong, for exit codes and Python
//! exception classes), a one-line message that tells the user the cause, key/value context and the
//! source. Messages are written by us and never carry a secret.

use std::fmt;

/// What kind of failure this is. Kept small: it decides the exit code and the Python exception class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// config.properties or a command-line value is wrong (exit code 2).
    Config,
    /// The storage refused our credentials or signature.
    StorageAuth,
    /// The bucket or an object does not exist.
    StorageNotFound,
    /// The storage endpoint cannot be reached (DNS, refused, timeout).
    StorageUnreachable,
    /// An object in the bucket does not match the local file (size or CRC64).
    Integrity,
    /// Any other storage failure.
    Storage,
    /// A tar.gz archive is malformed or unsafe.
    Archive,
    /// An encrypted archive or manifest met without its identity, or with another one.
    Encryption,
    /// MongoDB cannot be reached (refused, DNS, timeout, no primary/member).
    MongoUnreachable,
    /// MongoDB refused the user name or password.
    MongoAuth,
    /// The MongoDB user lacks a privilege the step needs.
    MongoUnauthorized,
    /// The database (or a dump directory to restore) does not exist.
    MongoNotFound,
    /// Any other MongoDB failure.
    Mongo,
    /// Local file-system failure (disk full, permissions…).
    Io,
    /// Another run holds the lock.
    Busy,
    /// A bug or an unexpected state.
    Internal,
}

impl ErrorKind {
    /// A short stable name, used in JSON output and by the Python layer.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::StorageAuth => "storage_auth",
            ErrorKind::StorageNotFound => "storage_not_found",
            ErrorKind::StorageUnreachable => "storage_unreachable",
            ErrorKind::Integrity => "integrity",
            ErrorKind::Storage => "storage",
            ErrorKind::Archive => "archive",
            ErrorKind::Encryption => "encryption",
            ErrorKind::MongoUnreachable => "mongo_unreachable",
            ErrorKind::MongoAuth => "mongo_auth",
            ErrorKind::MongoUnauthorized => "mongo_unauthorized",
            ErrorKind::MongoNotFound => "mongo_not_found",
            ErrorKind::Mongo => "mongo",
            ErrorKind::Io => "io",
            ErrorKind::Busy => "busy",
            ErrorKind::Internal => "internal",
        }
    }

    /// Process exit code for this kind: 2 for bad configuration or usage, 1 otherwise. (A restore
    /// that finished with failed documents is no error: it exits with `EXIT_INCOMPLETE`.)
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Config => 2,
            _ => 1,
        }
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The exit code of a restore that finished but could not restore some documents or indexes
/// (they are listed in its report).
pub const EXIT_INCOMPLETE: i32 = 3;

/// An engine error. `Display` is the single line shown to the user.
pub struct Error {
    kind: ErrorKind,
    message: String,
    context: Vec<(&'static str, String)>,
    source: Option<Source>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            context: Vec::new(),
            source: None,
        }
    }

    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    /// A local I/O failure on `path`, phrased for the user ("disk full" rather than "os error 28").
    pub fn io(action: &str, path: &std::path::Path, err: std::io::Error) -> Self {
        let why = match os_code(&err) {
            Some(28) => "no space left on device".to_string(),
            Some(13) => "permission denied".to_string(),
            _ => err.to_string(),
        };
        Error::new(
            ErrorKind::Io,
            format!("cannot {action} {}: {why}", path.display()),
        )
        .with_context("path", path.display().to_string())
        .with_source(err)
    }

    pub fn with_context(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.context.push((key, value.into()));
        self
    }

    /// The same error as another kind (a file-system failure reading the config file is a
    /// configuration problem), its message, context and source kept.
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn context(&self) -> &[(&'static str, String)] {
        &self.context
    }
}

/// The OS error code of an I/O error, also when a library wrapped it in its own (tar does).
fn os_code(err: &std::io::Error) -> Option<i32> {
    if let Some(code) = err.raw_os_error() {
        return Some(code);
    }
    let mut inner: Option<&(dyn std::error::Error + 'static)> = err
        .get_ref()
        .map(|e| e as &(dyn std::error::Error + 'static));
    while let Some(e) = inner {
        if let Some(code) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.raw_os_error())
        {
            return Some(code);
        }
        inner = e.source();
    }
    None
}

/// The message, then the context it does not already name: `upload failed (key: a/b.tar.gz)`.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        let unsaid = self
            .context
            .iter()
            .filter(|(_, v)| !self.message.contains(v.as_str()));
        for (i, (k, v)) in unsaid.enumerate() {
            f.write_str(if i == 0 { " (" } else { ", " })?;
            write!(f, "{k}: {v}")?;
        }
        if self
            .context
            .iter()
            .any(|(_, v)| !self.message.contains(v.as_str()))
        {
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {self}", self.kind)?;
        if let Some(s) = &self.source {
            write!(f, " [source: {s}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_context() {
        let e = Error::new(ErrorKind::Storage, "upload failed")
            .with_context("key", "a/b.tar.gz")
            .with_context("attempts", "4");
        assert_eq!(
            e.to_string(),
            "upload failed (key: a/b.tar.gz, attempts: 4)"
        );
        assert_eq!(e.kind().exit_code(), 1);
        assert_eq!(Error::config("x").kind().exit_code(), 2);
    }

    #[test]
    fn io_error_names_disk_full() {
        let e = Error::io(
            "write",
            std::path::Path::new("/x/y"),
            std::io::Error::from_raw_os_error(28),
        );
        assert_eq!(e.to_string(), "cannot write /x/y: no space left on device");
        assert_eq!(e.context(), [("path", "/x/y".to_string())]);
    }
}
