//! Typed, validated settings from `config.properties` (COMPAT §1) plus the new optional keys.
//!
//! Raw lines come from `properties`; this module turns them into `Settings` in one pass and fails on
//! the first bad value with ONE line naming file, line and key. It owns the list of known keys and
//! their defaults; it does not open connections or touch the bucket.

mod keys;
mod properties;
mod storage_target;

pub use keys::{KeySpec, KEYS};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::mongo::MongoTarget;
pub use crate::secret::Secret;
pub use crate::storage::target::{derive_oss_region, Endpoint, SignatureVersion, StorageTarget};
use crate::storage::StorageOptions;

use crate::codec::{self, Codec};
use crate::error::{Error, Result};

/// The template's placeholders (config.properties): a file that still has them was not filled in.
pub const PLACEHOLDER_KEY_ID: &str = "your-access-key-id";
pub const PLACEHOLDER_KEY_SECRET: &str = "your-access-key-secret";
pub const PLACEHOLDER_DB_PASSWD: &str = "change-me";

/// Environment variables that may carry the secrets instead of the file.
pub const ENV_ACCESS_KEY_SECRET: &str = "MONGO_OSS_ACCESS_KEY_SECRET";
pub const ENV_SECURITY_TOKEN: &str = "MONGO_OSS_SECURITY_TOKEN";
pub const ENV_DB_PASSWD: &str = "MONGO_OSS_DB_PASSWD";
/// The password of the user restores write with (`restore_db_user`, `--db-user`).
pub const ENV_RESTORE_PASSWD: &str = "MONGO_OSS_RESTORE_PASSWD";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl LogLevel {
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// What a backup run does: a plain full backup (`is_inc_backup=0`), or cycles of a full dump and
/// oplog increments with a new cycle every `period_days` (`is_inc_backup=1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    Incremental { period_days: u32 },
}

impl Mode {
    pub fn is_incremental(self) -> bool {
        matches!(self, Mode::Incremental { .. })
    }
}

/// The effective settings of one installation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file they came from (as given by the user).
    pub source: PathBuf,
    pub endpoint: String,
    pub access_key_id: String,
    pub access_key_secret: Secret,
    pub bucket: String,
    /// A host name, or a whole `mongodb://` URI.
    pub db_host: String,
    pub db_port: u16,
    pub db_user: String,
    pub db_passwd: Secret,
    /// Empty = every database but admin, local and config.
    pub db_name: String,
    pub db_backup_root_path: PathBuf,
    /// Kept for old files; the engine needs no MongoDB binaries.
    pub mongo_shell_path: String,
    pub mode: Mode,
    pub is_upload_to_oss: bool,
    pub storage_url: Option<String>,
    pub oss_signature_version: SignatureVersion,
    pub oss_region: Option<String>,
    /// `oss_credentials=ecs_ram_role` (and `oss_ecs_role`): the instance's RAM role, no key.
    pub oss_ecs_ram_role: Option<String>,
    pub oss_security_token: Secret,
    pub oss_encryption: Option<crate::storage::target::OssEncryption>,
    /// `encrypt_recipients`: archives and manifests' data are sealed for these keys.
    pub encryption: Option<crate::crypt::Recipients>,
    /// The age identity restores open sealed archives with (`--identity`, `MONGO_OSS_AGE_IDENTITY`).
    pub identity: Option<std::sync::Arc<crate::crypt::Identity>>,
    pub upload_concurrency: usize,
    pub upload_part_size_mb: usize,
    /// A full dump's archive is kept locally while it streams (`local_copy`).
    pub local_copy: bool,
    /// A storage request that stalls longer than this is abandoned and retried.
    pub storage_timeout_seconds: u64,
    pub compression_level: u32,
    /// `compression`, `compression_level` / `zstd_level` and `compression_threads`, resolved.
    pub codec: Codec,
    pub zstd_level: u32,
    pub cycle_prefix: String,
    pub keep_cycles: u32,
    /// A folder bucket (`file://`) that does not exist is created by a backup run.
    pub create_bucket_folder: bool,
    pub log_level: LogLevel,
    /// The Prometheus textfile rewritten after every backup and verify.
    pub metrics_file: Option<PathBuf>,
    pub restore_db_user: String,
    pub restore_db_passwd: Secret,
    /// Resolved once from the keys above: the MongoDB server to talk to,
    pub mongo: MongoTarget,
    /// the same server as the user restores and `verify --deep` write with,
    pub restore_mongo: MongoTarget,
    /// where archives go (`None` when nothing is uploaded),
    pub storage: Option<StorageTarget>,
    /// and how the bucket is talked to.
    pub storage_options: StorageOptions,
}

/// Settings plus the warnings found while reading them (unknown keys, ignored lines…).
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub warnings: Vec<String>,
}

/// Reads and validates a config file. `env` looks up environment variables (the secrets may come
/// from there); pass `|k| std::env::var(k).ok()` in production.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded> {
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::config(format!("{}: config file not found", path.display()))
        } else {
            Error::io("read config file", path, e).with_kind_config()
        }
    })?;
    let text = decode(bytes, path)?;
    let mut loaded = parse(&text, path, env)?;
    if let Some(warning) = permission_warning(path) {
        loaded.warnings.push(warning);
    }
    // A relative root (or metrics file) is the config file's neighbour, whatever the working
    // directory (cron runs in the home folder, an operator in the script's).
    let folder = std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    if let Some(metrics) = loaded
        .settings
        .metrics_file
        .as_mut()
        .filter(|m| m.is_relative())
    {
        *metrics = folder.join(&*metrics);
    }
    let root = &mut loaded.settings.db_backup_root_path;
    if root.is_relative() {
        let written = root.to_string_lossy().into_owned();
        *root = folder.join(&*root);
        if cfg!(unix) && is_windows_path(&written) {
            loaded.warnings.push(format!(
                "{}: db_backup_root_path \"{written}\" is a Windows path; here it is the folder {} beside the config file (name a directory such as /data/mongodb_backup/)",
                path.display(),
                root.display()
            ));
        }
    }
    Ok(loaded)
}

/// A `mongodb://user:password@host/…` URI with the password replaced by `***`; anything else as is.
pub fn mask_uri_password(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return text.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => text.to_string(),
    }
}

/// `C:\backup\`, `D:/x`, `\\server\share`: a path from a Windows machine.
fn is_windows_path(p: &str) -> bool {
    let b = p.as_bytes();
    (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'\\' | b'/'))
        || p.starts_with("\\\\")
}

/// The text of a config file: UTF-8 (with or without BOM), or GBK/GB18030 as the old scripts' Chinese
/// template saved by a Windows editor is. Anything else is refused naming the line of the first
/// byte that is neither.
fn decode(bytes: Vec<u8>, path: &Path) -> Result<String> {
    let bytes = match String::from_utf8(bytes) {
        Ok(text) => return Ok(text),
        Err(e) => e.into_bytes(),
    };
    if let Some(text) =
        encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(&bytes)
    {
        return Ok(text.into_owned());
    }
    let valid = std::str::from_utf8(&bytes)
        .err()
        .map_or(bytes.len(), |e| e.valid_up_to());
    let line = bytes[..valid].iter().filter(|b| **b == b'\n').count() + 1;
    Err(Error::config(format!(
        "{}:{line}: neither UTF-8 nor GBK text (byte {} of the file is invalid); save the file as UTF-8",
        path.display(),
        valid + 1
    )))
}

/// The file holds the secrets: say so when group or others may read it.
fn permission_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Some(format!(
                "{} has mode {mode:04o}: it holds the secrets, make it readable by its owner only (chmod 600)",
                path.display()
            ));
        }
    }
    None
}

/// Validates the text of a config file; `path` is only used in messages.
pub fn parse(text: &str, path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded> {
    let (entries, ignored) = properties::parse(text);
    let mut warnings = Vec::new();
    let file = path.display().to_string();
    for line in ignored {
        warnings.push(format!(
            "{file}:{}: line ignored, it has no key = value",
            line.line
        ));
    }
    from_entries(entries, warnings, path, env)
}

/// Validates settings given as key/value pairs rather than a file (the variables at the top of the
/// old restore scripts). `source` names them in messages, e.g. `restore_full.py`.
pub fn from_pairs(
    source: &str,
    pairs: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded> {
    let entries = pairs
        .iter()
        .map(|(k, v)| properties::Entry {
            line: 0,
            key: k.clone(),
            value: v.trim().to_string(),
        })
        .collect();
    from_entries(entries, Vec::new(), Path::new(source), env)
}

fn from_entries(
    entries: Vec<properties::Entry>,
    mut warnings: Vec<String>,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded> {
    let file = path.display().to_string();
    let mut values: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut unknown: Vec<(usize, String)> = Vec::new();
    for entry in entries {
        if keys::spec(&entry.key).is_none() {
            let hint = keys::close_to(&entry.key)
                .map(|k| format!("; did you mean {k}?"))
                .unwrap_or_default();
            warnings.push(format!(
                "{file}:{}: unknown key \"{}\" ignored{hint}",
                entry.line, entry.key
            ));
            unknown.push((entry.line, entry.key));
            continue;
        }
        if let Some((first, _)) = values.get(&entry.key) {
            warnings.push(format!(
                "{file}:{}: {} is set again (first on line {first}); the last one wins",
                entry.line, entry.key
            ));
        }
        values.insert(entry.key, (entry.line, entry.value));
    }
    let r = Reader {
        file: &file,
        values: &values,
        unknown: &unknown,
    };
    let settings = build(&r, path, env)?;
    if settings.mode == (Mode::Incremental { period_days: 0 }) {
        warnings.push(format!(
            "{file}: full_backup_period = 0: every run starts a new cycle with a full dump"
        ));
    }
    Ok(Loaded { settings, warnings })
}

/// Looks up folded values and phrases errors as `file:line: key: "value" reason`.
struct Reader<'a> {
    file: &'a str,
    values: &'a BTreeMap<String, (usize, String)>,
    /// Keys the file has that are not ours: a missing key may be one of them misspelt.
    unknown: &'a [(usize, String)],
}

impl Reader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(_, v)| v.as_str())
    }

    fn required(&self, key: &str, why: &str) -> Result<&str> {
        self.get(key).ok_or_else(|| self.missing(key, why))
    }

    /// `missing key …`, pointing at a line that has it misspelt (keys are case-sensitive).
    fn missing(&self, key: &str, why: &str) -> Error {
        let near = self
            .unknown
            .iter()
            .find(|(_, k)| keys::close_to(k) == Some(key))
            .map(|(line, k)| {
                format!("; line {line} has \"{k}\" (keys are case-sensitive, spelt exactly)")
            })
            .unwrap_or_default();
        Error::config(format!("{}: missing key {key}{why}{near}", self.file))
    }

    /// The error for a bad value of `key` (never used for secrets: they are not validated).
    fn bad(&self, key: &str, reason: &str) -> Error {
        let (line, value) = &self.values[key];
        let at = if *line > 0 {
            format!(":{line}")
        } else {
            String::new()
        };
        Error::config(format!("{}{at}: {key}: \"{value}\" {reason}", self.file))
    }

    /// The key's text: the file's value, or (missing or empty) its default from `KEYS`.
    fn text(&self, key: &str) -> Result<&str> {
        match self.get(key) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => keys::spec(key)
                .and_then(KeySpec::default_value)
                .ok_or_else(|| self.missing(key, "")),
        }
    }

    fn parsed<T>(&self, key: &str, check: impl Fn(&str) -> Option<T>, reason: &str) -> Result<T> {
        let text = self.text(key)?;
        check(text).ok_or_else(|| self.bad(key, reason))
    }

    fn flag(&self, key: &str) -> Result<bool> {
        self.parsed(
            key,
            |v| match v.to_ascii_lowercase().as_str() {
                "1" | "true" => Some(true),
                "0" | "false" => Some(false),
                _ => None,
            },
            "is not 0 or 1",
        )
    }

    fn number<T: std::str::FromStr + PartialOrd + Copy>(
        &self,
        key: &str,
        range: (T, T),
        reason: &str,
    ) -> Result<T> {
        self.parsed(
            key,
            |v| {
                v.parse::<T>()
                    .ok()
                    .filter(|n| *n >= range.0 && *n <= range.1)
            },
            reason,
        )
    }
}

fn build(r: &Reader, path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings> {
    let db_host = r.text("db_host")?.to_string();
    if db_host.is_empty() || db_host.chars().any(char::is_whitespace) {
        return Err(r.bad("db_host", "is not a host name or mongodb:// URI"));
    }
    let db_port = r.number("db_port", (1u16, u16::MAX), "is not a port number")?;
    let db_name = r.get("db_name").unwrap_or("").to_string();
    if db_name
        .chars()
        .any(|c| matches!(c, '/' | '\\' | '.' | ' ' | '"' | '$' | '\0'))
    {
        return Err(r.bad("db_name", "is not a valid database name"));
    }
    let root = r.required("db_backup_root_path", " (the local working directory)")?;
    if root.is_empty() {
        return Err(r.bad(
            "db_backup_root_path",
            "is empty; name the local working directory",
        ));
    }
    let period = || {
        r.number(
            "full_backup_period",
            (0u32, 36500),
            "is not a whole number of days",
        )
    };
    let mode = match r.flag("is_inc_backup")? {
        true => Mode::Incremental {
            period_days: period()?,
        },
        false => {
            // Unused in full mode, but a value written must still be a number.
            if r.get("full_backup_period").is_some_and(|v| !v.is_empty()) {
                period()?;
            }
            Mode::Full
        }
    };
    let is_upload_to_oss = r.flag("is_upload_to_oss")?;
    let oss_signature_version = match r.text("oss_signature_version")? {
        "4" | "v4" | "V4" => SignatureVersion::V4,
        "1" | "v1" | "V1" => SignatureVersion::V1,
        _ => return Err(r.bad("oss_signature_version", "is not 4 or 1")),
    };
    let upload_concurrency = r.number(
        "upload_concurrency",
        (1usize, 64),
        "is not a number from 1 to 64",
    )?;
    let upload_part_size_mb = r.number(
        "upload_part_size_mb",
        (1usize, 1024),
        "is not a number of MiB from 1 to 1024",
    )?;
    let storage_timeout_seconds = r.number(
        "storage_timeout_seconds",
        (1u64, 3600),
        "is not a number of seconds from 1 to 3600",
    )?;
    let compression_level = r.number(
        "compression_level",
        (0u32, 9),
        "is not a compression level from 0 to 9",
    )?;
    let codec = Codec {
        kind: match r.text("compression")?.to_ascii_lowercase().as_str() {
            "gzip" | "gz" => codec::Kind::Gzip,
            "zstd" | "zst" => codec::Kind::Zstd,
            _ => return Err(r.bad("compression", "is not gzip or zstd")),
        },
        level: compression_level,
        threads: r.number(
            "compression_threads",
            (0usize, 256),
            "is not a number of threads (0 = every core)",
        )?,
    };
    let zstd_level = r.number("zstd_level", (1u32, 19), "is not a zstd level from 1 to 19")?;
    let codec = match codec.kind {
        codec::Kind::Gzip => codec,
        codec::Kind::Zstd => Codec {
            level: zstd_level,
            ..codec
        },
    };
    let cycle_prefix = match r.text("cycle_prefix")? {
        p if p.contains('/') || p.contains('\\') || p.chars().any(char::is_whitespace) => {
            return Err(r.bad("cycle_prefix", "must not contain slashes or blanks"))
        }
        p => p.to_string(),
    };
    let keep_cycles = r.number(
        "keep_cycles",
        (0u32, 100_000),
        "is not a whole number (0 = keep all)",
    )?;
    let create_bucket_folder = r.flag("create_bucket_folder")?;
    let local_copy = r.flag("local_copy")?;
    let log_level = match r.text("log_level")?.to_ascii_lowercase().as_str() {
        "info" => LogLevel::Info,
        "error" => LogLevel::Error,
        "warn" | "warning" => LogLevel::Warn,
        "debug" => LogLevel::Debug,
        _ => return Err(r.bad("log_level", "is not one of error, warn, info, debug")),
    };

    let secret_from = |key: &str, var: &str| -> Secret {
        match env(var).filter(|v| !v.is_empty()) {
            Some(v) => Secret::new(v),
            None => Secret::new(r.get(key).unwrap_or("")),
        }
    };
    let access_key_secret = secret_from("accessKeySecret", ENV_ACCESS_KEY_SECRET);
    let db_passwd = secret_from("db_passwd", ENV_DB_PASSWD);
    if db_passwd.expose() == PLACEHOLDER_DB_PASSWD {
        return Err(r.bad(
            "db_passwd",
            "is still the template's placeholder: write the MongoDB password (or set MONGO_OSS_DB_PASSWD)",
        ));
    }
    let oss_security_token = secret_from("oss_security_token", ENV_SECURITY_TOKEN);
    let oss_ecs_ram_role = match r.text("oss_credentials")? {
        "access_key" | "" => None,
        "ecs_ram_role" => Some(r.get("oss_ecs_role").unwrap_or("").trim().to_string()),
        _ => return Err(r.bad("oss_credentials", "is not access_key or ecs_ram_role")),
    };
    let kms_key_id = r.get("oss_kms_key_id").unwrap_or("").trim().to_string();
    let oss_encryption = match r.get("oss_server_side_encryption").unwrap_or("").trim() {
        "" if !kms_key_id.is_empty() => {
            return Err(r.bad("oss_kms_key_id", "needs oss_server_side_encryption=KMS"))
        }
        "" => None,
        v @ ("AES256" | "KMS" | "SM4") => {
            if v != "KMS" && !kms_key_id.is_empty() {
                return Err(r.bad("oss_kms_key_id", "needs oss_server_side_encryption=KMS"));
            }
            Some(crate::storage::target::OssEncryption {
                algorithm: v.to_string(),
                kms_key_id: Some(kms_key_id).filter(|k| !k.is_empty()),
            })
        }
        _ => return Err(r.bad("oss_server_side_encryption", "is not AES256, KMS or SM4")),
    };
    let encryption = match r.get("encrypt_recipients").map(str::trim) {
        None | Some("") => None,
        Some(v) => {
            // A file named relative to the config file, as cron's working folder is anywhere.
            let v = match v.starts_with("age1") || Path::new(v).is_absolute() {
                true => v.to_string(),
                false => path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join(v)
                    .display()
                    .to_string(),
            };
            let parsed = crate::crypt::Recipients::parse(&v);
            Some(parsed.map_err(|why| r.bad("encrypt_recipients", &why))?)
        }
    };
    let identity = match env(crate::crypt::ENV_IDENTITY).filter(|v| !v.trim().is_empty()) {
        Some(v) => Some(std::sync::Arc::new(crate::crypt::Identity::load(
            &v,
            crate::crypt::ENV_IDENTITY,
        )?)),
        None => None,
    };
    let restore_db_user = r.get("restore_db_user").unwrap_or("").to_string();
    let restore_db_passwd = secret_from("restore_db_passwd", ENV_RESTORE_PASSWD);
    let mongo = MongoTarget {
        host: db_host.clone(),
        port: db_port,
        user: r.get("db_user").unwrap_or("").to_string(),
        password: db_passwd.clone(),
        writes: false,
        restore_user: false,
    };
    let restore_mongo = match restore_db_user.as_str() {
        "" => mongo.for_restores(None),
        user => mongo.for_restores(Some((user, restore_db_passwd.clone()))),
    };
    let storage_url = r
        .get("storage_url")
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let oss_region = r
        .get("oss_region")
        .filter(|v| !v.is_empty())
        .map(str::to_string);

    let mut settings = Settings {
        source: path.to_path_buf(),
        endpoint: r.get("endpoint").unwrap_or("").to_string(),
        access_key_id: r.get("accessKeyId").unwrap_or("").to_string(),
        access_key_secret,
        bucket: r.get("bucket").unwrap_or("").to_string(),
        db_host: db_host.clone(),
        db_port,
        db_user: r.get("db_user").unwrap_or("").to_string(),
        db_passwd: db_passwd.clone(),
        db_name,
        db_backup_root_path: PathBuf::from(root),
        mongo_shell_path: r.get("mongo_shell_path").unwrap_or("").to_string(),
        mode,
        is_upload_to_oss,
        storage_url,
        oss_signature_version,
        oss_region,
        oss_ecs_ram_role,
        oss_security_token,
        oss_encryption,
        encryption,
        identity,
        upload_concurrency,
        upload_part_size_mb,
        local_copy,
        storage_timeout_seconds,
        compression_level,
        codec,
        zstd_level,
        cycle_prefix,
        keep_cycles,
        create_bucket_folder,
        log_level,
        metrics_file: r
            .get("metrics_file")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
        restore_db_user,
        restore_db_passwd,
        mongo,
        restore_mongo,
        storage: None,
        storage_options: StorageOptions {
            upload_concurrency,
            part_size: upload_part_size_mb << 20,
            io_timeout: std::time::Duration::from_secs(storage_timeout_seconds),
            create_missing_folder: create_bucket_folder,
            ..Default::default()
        },
    };
    if is_upload_to_oss {
        settings.storage = Some(storage_target::resolve(&settings, &|key, reason| {
            if r.get(key).is_some() {
                r.bad(key, reason)
            } else {
                Error::config(format!("{}: {key} {reason}", r.file))
            }
        })?);
    }
    Ok(settings)
}

impl Settings {
    /// How this installation stores new archives (codec, sealed or not).
    pub fn archive_format(&self) -> crate::layout::Format {
        crate::layout::Format {
            codec: self.codec.kind,
            sealed: self.encryption.is_some(),
        }
    }

    /// Archives are opened with the identity in file `path` (`--identity`).
    pub fn use_identity_file(&mut self, path: &Path) -> Result<()> {
        let identity = crate::crypt::Identity::from_file(path)?;
        self.identity = Some(std::sync::Arc::new(identity));
        Ok(())
    }

    /// The identity restores open sealed archives with, if one was given.
    pub fn identity(&self) -> Option<&crate::crypt::Identity> {
        self.identity.as_deref()
    }

    /// Restores write as `user` (`--db-user`), with the password from `MONGO_OSS_RESTORE_PASSWD`
    /// (or `password`, from the Python API): never from the command line, where `ps` shows it.
    pub fn restore_as(&mut self, user: &str, password: Option<Secret>) -> Result<()> {
        let password = match password {
            Some(p) => p,
            None => match std::env::var(ENV_RESTORE_PASSWD) {
                Ok(p) if !p.is_empty() => Secret::new(p),
                _ => {
                    return Err(Error::config(format!(
                        "--db-user {user} needs its password in the environment variable {ENV_RESTORE_PASSWD} (never on the command line)"
                    )))
                }
            },
        };
        self.restore_mongo = self.mongo.for_restores(Some((user, password)));
        Ok(())
    }

    /// The effective settings as one JSON object keyed by the config keys. Secrets are `"***"`
    /// unless `show_secrets`.
    pub fn to_json(&self, show_secrets: bool) -> serde_json::Value {
        use serde_json::{json, Value};
        let secret = |s: &Secret| -> Value {
            if show_secrets || s.is_empty() {
                Value::from(s.expose())
            } else {
                Value::from("***")
            }
        };
        let region = self.oss_region.clone().or_else(|| {
            Endpoint::parse(&self.endpoint)
                .ok()
                .and_then(|e| derive_oss_region(&e.host))
        });
        json!({
            "endpoint": self.endpoint,
            "accessKeyId": self.access_key_id,
            "accessKeySecret": secret(&self.access_key_secret),
            "bucket": self.bucket,
            "db_host": if show_secrets { self.db_host.clone() } else { mask_uri_password(&self.db_host) },
            "db_port": self.db_port,
            "db_user": self.db_user,
            "db_passwd": secret(&self.db_passwd),
            "restore_db_user": self.restore_db_user,
            "restore_db_passwd": secret(&self.restore_db_passwd),
            "db_name": self.db_name,
            "db_backup_root_path": self.db_backup_root_path.to_string_lossy(),
            "mongo_shell_path": self.mongo_shell_path,
            "is_inc_backup": u8::from(self.mode.is_incremental()),
            "full_backup_period": match self.mode {
                Mode::Incremental { period_days } => Some(period_days),
                Mode::Full => None,
            },
            "is_upload_to_oss": u8::from(self.is_upload_to_oss),
            "storage_url": self.storage_url,
            "oss_signature_version": self.oss_signature_version.number(),
            "oss_region": region,
            "oss_credentials": if self.oss_ecs_ram_role.is_some() { "ecs_ram_role" } else { "access_key" },
            "oss_ecs_role": self.oss_ecs_ram_role.clone().unwrap_or_default(),
            "oss_security_token": secret(&self.oss_security_token),
            "oss_server_side_encryption": self.oss_encryption.as_ref().map(|e| e.algorithm.clone()).unwrap_or_default(),
            "oss_kms_key_id": self.oss_encryption.as_ref().and_then(|e| e.kms_key_id.clone()).unwrap_or_default(),
            "encrypt_recipients": self.encryption.as_ref().map(|r| r.describe().join(" ")).unwrap_or_default(),
            "upload_concurrency": self.upload_concurrency,
            "upload_part_size_mb": self.upload_part_size_mb,
            "local_copy": u8::from(self.local_copy),
            "storage_timeout_seconds": self.storage_timeout_seconds,
            "compression": self.codec.kind.name(),
            "compression_level": self.compression_level,
            "zstd_level": self.zstd_level,
            "compression_threads": self.codec.threads,
            "cycle_prefix": self.cycle_prefix,
            "keep_cycles": self.keep_cycles,
            "create_bucket_folder": u8::from(self.create_bucket_folder),
            "log_level": self.log_level.name(),
            "metrics_file": self.metrics_file.as_ref().map(|p| p.to_string_lossy()),
        })
    }
}

trait ConfigKind {
    fn with_kind_config(self) -> Self;
}

impl ConfigKind for Error {
    /// An unreadable config file is a configuration problem (exit 2), whatever the OS said.
    fn with_kind_config(self) -> Self {
        self.with_kind(crate::error::ErrorKind::Config)
    }
}

#[cfg(test)]
mod tests;
