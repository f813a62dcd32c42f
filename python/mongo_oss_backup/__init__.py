"""mongo-oss-backup: MongoDB backups (full dumps + oplog increments) to Aliyun OSS, S3 or a folder.

The engine is Rust (`mongo_oss_backup._core`). The API: backup(), restore(), list_cycles(), status(),
verify(), prune() with keyword-only options and typed results (see mongo_oss_backup.api), errors as
subclasses of MongoOssBackupError, one per kind.
"""

import json as _json
from typing import Any, Dict, List, Tuple

from mongo_oss_backup._core import (
    ArchiveError,
    EncryptionError,
    BusyError,
    ConfigError,
    IntegrityError,
    InternalError,
    LocalIOError,
    MongoAuthError,
    MongoError,
    MongoNotFoundError,
    MongoOssBackupError,
    MongoUnauthorizedError,
    MongoUnreachableError,
    Storage,
    StorageAuthError,
    StorageError,
    StorageNotFoundError,
    StorageUnreachableError,
    __version__,
    cli_main,
    create_archive,
    extract_archive,
)
from mongo_oss_backup import _core
from mongo_oss_backup.api import (
    BackupResult,
    Catalog,
    Cycle,
    FullBackup,
    Progress,
    PruneReport,
    RestoreResult,
    Status,
    VerifyReport,
    backup,
    list_cycles,
    prune,
    restore,
    status,
    verify,
)

__all__ = [
    "ArchiveError",
    "EncryptionError",
    "BusyError",
    "ConfigError",
    "IntegrityError",
    "InternalError",
    "LocalIOError",
    "MongoAuthError",
    "MongoError",
    "MongoNotFoundError",
    "MongoOssBackupError",
    "MongoUnauthorizedError",
    "MongoUnreachableError",
    "Storage",
    "StorageAuthError",
    "StorageError",
    "StorageNotFoundError",
    "StorageUnreachableError",
    "__version__",
    "BackupResult",
    "Catalog",
    "Cycle",
    "FullBackup",
    "Progress",
    "PruneReport",
    "RestoreResult",
    "Status",
    "VerifyReport",
    "backup",
    "check_config",
    "cli_main",
    "create_archive",
    "extract_archive",
    "list_cycles",
    "prune",
    "restore",
    "status",
    "verify",
]


def check_config(path: str, *, show_secrets: bool = False) -> Tuple[Dict[str, Any], List[str]]:
    """Validate a config.properties; return (effective settings keyed by config key, warnings).

    Raises ConfigError with one line naming file, line and key when a value is wrong.
    """
    text, warnings = _core.check_config(path, show_secrets=show_secrets)
    return _json.loads(text), warnings
