"""Type stubs of the Rust extension `mongo_oss_backup._core`. Every function releases the GIL while
it runs. Errors are raised as subclasses of MongoOssBackupError, one per kind."""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypedDict

__version__: str

class MongoOssBackupError(Exception):
    """Base class of every mongo-oss-backup error. `context` holds what the error is about, by name
    (`path`, `key`, `cycle`, `archive`…), besides the one-line message."""
    context: Dict[str, str]
class ConfigError(MongoOssBackupError):
    """config.properties or an argument is wrong (exit code 2)."""
class StorageError(MongoOssBackupError):
    """The bucket failed; the base of the storage errors."""
class StorageAuthError(StorageError):
    """The bucket refused the credentials."""
class StorageNotFoundError(StorageError):
    """The bucket or an object does not exist."""
class StorageUnreachableError(StorageError):
    """The storage endpoint cannot be reached."""
class IntegrityError(MongoOssBackupError):
    """Stored data does not match what was recorded (size, CRC64, a restore's chain)."""
class ArchiveError(MongoOssBackupError):
    """A tar.gz archive is malformed or would write outside its target."""
class LocalIOError(MongoOssBackupError):
    """A local file-system failure (disk full, permissions)."""
class MongoError(MongoOssBackupError):
    """MongoDB failed; the base of the MongoDB errors."""
class MongoUnreachableError(MongoError): ...
class MongoAuthError(MongoError): ...
class MongoUnauthorizedError(MongoError): ...
class MongoNotFoundError(MongoError): ...
class BusyError(MongoOssBackupError): ...
class InternalError(MongoOssBackupError): ...
class EncryptionError(MongoOssBackupError):
    """An encrypted backup needs its age identity (missing, or another one)."""

class ObjectInfo(TypedDict):
    key: str
    size: int
    crc64: Optional[int]
    etag: Optional[str]
    last_modified: Optional[int]

class Uploaded(TypedDict):
    key: str
    size: int
    crc64: int

class ArchiveStats(TypedDict):
    files: int
    input_bytes: int
    archive_bytes: int

def cli_main(argv: List[str]) -> int:
    """Run the command line (argv[0] is the program name); returns the exit code."""

def check_config(path: str, *, show_secrets: bool = False) -> Tuple[str, List[str]]:
    """Effective settings as JSON text, and warnings. Raises: ConfigError."""

ProgressCallback = Callable[[Dict[str, Any]], None]
"""Receives {"task", "unit", "items", "bytes", "total", "finished", "seconds"} about ten times a
second per running task (called with the GIL held, from the engine's threads)."""

def backup_json(*, config: str, progress: Optional[ProgressCallback] = None) -> str:
    """One backup as the config file says, under the run lock; the result as JSON (what `backup
    --json` prints). Raises: BusyError, ConfigError, Mongo*Error, Storage*Error, IntegrityError,
    LocalIOError."""

def restore_json(*, config: str, cycle: Optional[str] = None, full: Optional[str] = None,
                 until: Optional[str] = None, target_db: Optional[str] = None, dry_run: bool = False,
                 drop: bool = False, oplog_only: bool = False, skip_unknown: bool = False,
                 allow_gap: bool = False, local_dir: Optional[str] = None, downloaded: bool = False,
                 db_user: Optional[str] = None, db_password: Optional[str] = None,
                 progress: Optional[ProgressCallback] = None, ns_include: List[str] = ...,
                 ns_exclude: List[str] = ..., ns_from: List[str] = ...,
                 ns_to: List[str] = ..., identity: Optional[str] = None) -> str:
    """Restores a cycle or a full-mode backup (exactly one of cycle=, full=); the report as JSON.
    A cycle's chain is proven first. Raises: IntegrityError (missing or damaged archive, broken
    chain, --until outside the cycle: nothing was restored), ConfigError, Mongo*Error, Storage*Error."""

def list_json(*, config: str) -> str:
    """The bucket's cycles and full backups as JSON (what `list --json` prints)."""

def status_json(*, config: str, max_age_seconds: int, interval_seconds: Optional[int] = None,
                prometheus: Optional[str] = None) -> str:
    """The installation's status as JSON (what `status --json` prints); `prometheus` also writes it
    as a Prometheus textfile."""

def verify_json(*, config: str, name: Optional[str] = None, deep: bool = False,
                local_dir: Optional[str] = None, db_user: Optional[str] = None,
                db_password: Optional[str] = None, progress: Optional[ProgressCallback] = None,
                identity: Optional[str] = None) -> str:
    """A backup checked against its manifest, as JSON (what `verify --json` prints)."""

def prune_json(*, config: str, keep: int, dry_run: bool = False) -> str:
    """Deletes the cycles older than the `keep` newest (never the current); the report as JSON."""

def run_restore_full(pairs: Sequence[Tuple[str, str]], *, name: str, suffix: str, local_temp: str,
                     downloaded: bool, drop: bool, target_db: Optional[str] = None) -> int:
    """restore_full.py's entry: prints a summary; returns the exit code (0, 1, 2 or 3)."""

def run_restore_inc(pairs: Sequence[Tuple[str, str]], *, cycle: str, local_temp: str, downloaded: bool,
                    drop: bool, until: str = "", target_db: Optional[str] = None, dry_run: bool = False,
                    skip_unknown: bool = False, allow_gap: bool = False) -> int:
    """restore_inc.py's entry: full dump then every increment (up to `until`); returns the exit code."""

def create_archive(src: str, dest: str, *, level: int = 6, compression: str = "gzip",
                   threads: int = 1, recipients: Optional[str] = None) -> ArchiveStats:
    """tar.gz (or tar.zst with compression="zstd") of directory src, entries <basename>/...,
    compressed on `threads` threads (0 = every core); sealed with age for `recipients` (age1…
    keys, or a file of them) when given; file mode 0600.
    Raises: ConfigError, ArchiveError, LocalIOError."""

def extract_archive(archive: str, dest: str, *, identity: Optional[str] = None) -> List[str]:
    """Extracts into dest, opening a sealed (age) archive with the identity file `identity` (else
    MONGO_OSS_AGE_IDENTITY); returns the top-level names. Raises: ArchiveError (unsafe or
    corrupt), EncryptionError (sealed, identity missing or another)."""

class Storage:
    """The bucket a config file names (storage_url, or OSS endpoint + bucket)."""
    def __init__(self, *, config: str) -> None: ...
    def put_file(self, local: str, key: str) -> Uploaded:
        """Upload (multipart above 8 MiB) and verify size and CRC64. Raises: IntegrityError, Storage*Error."""
    def get_file(self, key: str, local: str) -> int:
        """Download (verified); returns the CRC64 written. Raises: StorageNotFoundError, IntegrityError."""
    def head(self, key: str) -> Optional[ObjectInfo]: ...
    def list(self, prefix: str = "") -> List[ObjectInfo]: ...
    def delete(self, keys: List[str]) -> None: ...
    def describe(self) -> str: ...
