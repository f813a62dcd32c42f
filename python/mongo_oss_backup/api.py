"""The Python API: the CLI's operations as functions with keyword-only options and typed results.

Each call runs in the Rust core with the GIL released (other Python threads keep running) and raises
one exception class per error kind, all subclasses of MongoOssBackupError. The results are frozen
dataclasses built from the same JSON the CLI prints with --json.
"""

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from mongo_oss_backup import _core

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Progress:
    """One progress report of a running task (about ten per second per task, plus its end)."""
    task: str  # e.g. "dump titan.users", "upload <key>"
    unit: str  # "documents" or "bytes"
    items: int  # documents or oplog entries done
    bytes: int
    total: Optional[int]  # bytes expected, for transfers
    finished: bool
    seconds: float


@dataclass(frozen=True)
class OplogPosition:
    t: int
    i: int


@dataclass(frozen=True)
class BackupResult:
    mode: str  # "full" or "incremental"
    summary: str  # the line a cron log gets
    name: Optional[str] = None  # full backup name, or the increment's name
    cycle: Optional[str] = None
    outcome: Optional[str] = None  # incremental: "full_dump", "increment" or "nothing_new"
    documents: Optional[int] = None
    entries: Optional[int] = None
    collections: Optional[int] = None
    key: Optional[str] = None
    size: Optional[int] = None
    crc64: Optional[str] = None
    local_dir: Optional[str] = None
    position: Optional[OplogPosition] = None
    flushed: List[str] = field(default_factory=list)
    seconds: Optional[float] = None


@dataclass(frozen=True)
class Archive:
    key: str
    size: int
    created: Optional[str] = None
    entries: Optional[int] = None
    oplog_from: Optional[str] = None
    oplog_to: Optional[str] = None
    documents: Optional[int] = None
    encrypted: bool = False  # sealed with age: restoring it needs the identity


@dataclass(frozen=True)
class Cycle:
    name: str
    complete: bool
    has_manifest: bool
    total_bytes: int
    started: Optional[str] = None
    full: Optional[Archive] = None
    increments: List[Archive] = field(default_factory=list)
    covers_from: Optional[str] = None
    covers_to: Optional[str] = None
    missing: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)  # what stops it from restoring
    protected_until: Optional[str] = None  # the bucket's retention policy (WORM) protects it until then


@dataclass(frozen=True)
class FullBackup:
    name: str
    has_manifest: bool
    archive: Archive


@dataclass(frozen=True)
class Catalog:
    cycles: List[Cycle]
    full_backups: List[FullBackup]
    retention_days: Optional[int] = None  # the bucket's retention policy (WORM), when it has one
    retention_locked: Optional[bool] = None  # False: still InProgress (its owner may remove it)


@dataclass(frozen=True)
class OplogWindow:
    window_seconds: int
    at_risk: bool
    oldest: Optional[str] = None
    newest: Optional[str] = None
    fill: Optional[float] = None  # how full the capped oplog is, 0..1, when the server says
    interval_seconds: Optional[int] = None


@dataclass(frozen=True)
class LastFailure:
    failed_at: int  # Unix time
    error: str


@dataclass(frozen=True)
class LastVerify:
    finished_at: int  # Unix time
    deep: bool
    ok: bool
    name: Optional[str] = None
    problem: Optional[str] = None  # the first problem found, or the error that stopped it


@dataclass(frozen=True)
class Status:
    mode: str
    stale: bool  # no successful backup, or older than max_age
    max_age_seconds: int
    last_backup: Optional[str] = None
    last_backup_age_seconds: Optional[int] = None
    last_backup_at: Optional[int] = None  # Unix time
    last_run_seconds: Optional[float] = None
    last_stored_bytes: Optional[int] = None
    last_failure: Optional[LastFailure] = None  # the last run, when it failed
    last_verify: Optional[LastVerify] = None
    last_summary: Optional[str] = None
    cycle: Optional[str] = None
    cycle_started: Optional[str] = None
    position: Optional[str] = None
    position_time: Optional[int] = None  # Unix time of the newest write the cycle covers
    pending_archives: List[str] = field(default_factory=list)
    oplog: Optional[OplogWindow] = None
    warnings: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class ArchiveCheck:
    key: str
    ok: bool
    expected_size: Optional[int] = None
    expected_crc64: Optional[str] = None
    size: Optional[int] = None
    crc64: Optional[str] = None
    problem: Optional[str] = None


@dataclass(frozen=True)
class CollectionCheck:
    namespace: str
    documents: int
    hash: str
    ok: bool
    expected_documents: Optional[int] = None
    expected_hash: Optional[str] = None


@dataclass(frozen=True)
class IncrementCheck:
    key: str
    entries: int
    ok: bool
    expected_entries: Optional[int] = None


@dataclass(frozen=True)
class DeepCheck:
    scratch_database: str
    collections: List[CollectionCheck]
    increments: List[IncrementCheck]
    restore_seconds: float = 0.0  # download + restore + replay: the drill's recovery time
    reached: Optional[OplogPosition] = None
    replay: Optional["ReplaySummary"] = None  # cycles: the increments replayed into the scratch copy


@dataclass(frozen=True)
class VerifyReport:
    name: str
    has_manifest: bool
    ok: bool
    archives: List[ArchiveCheck]
    unrecorded: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)  # checks that could not be made
    deep: Optional[DeepCheck] = None


@dataclass(frozen=True)
class PruneReport:
    kept: List[str]
    deleted: List[str]
    objects_deleted: int
    dry_run: bool
    protected: List[List[str]] = field(default_factory=list)  # [cycle, until]: kept, WORM protects it


@dataclass(frozen=True)
class CollectionRestore:
    collection: str
    inserted: int
    already_present: int
    failed: int
    indexes_built: int
    replaced: int = 0  # already there with other content (a restore over an earlier one)
    source: Optional[str] = None  # selective restores: the namespace it came from, when renamed
    examples: List[str] = field(default_factory=list)
    index_failures: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class DatabaseRestore:
    database: str
    collections: List[CollectionRestore]
    ignored_files: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReplaySummary:
    applied: Dict[str, int]
    skipped: int
    missing_update_targets: int
    transactions_committed: int
    transactions_aborted: int
    stopped_at_until: bool
    transactions_logged_op_by_op: int = 0  # of the committed: logged without applyOps (secantusdb)
    repeated: int = 0  # entries an old increment repeated from the one before, applied once
    notes: List[str] = field(default_factory=list)  # e.g. a collection renamed out of the database
    excluded: int = 0  # selective restores: entries of collections outside the selection
    by_namespace: Dict[str, int] = field(default_factory=dict)  # selective: applied, by oplog ns
    first: Optional[OplogPosition] = None
    last: Optional[OplogPosition] = None


@dataclass(frozen=True)
class IncrementPlan:
    name: str
    entries_by_op: Dict[str, int]
    entries: int = 0
    first: Optional[OplogPosition] = None
    last: Optional[OplogPosition] = None


@dataclass(frozen=True)
class ChainLink:
    """One increment of a restore's plan, in replay order."""
    name: str
    oplog_from: Optional[OplogPosition] = None
    oplog_to: Optional[OplogPosition] = None
    skip_through: Optional[OplogPosition] = None  # entries an old increment repeated
    problem: Optional[str] = None


@dataclass(frozen=True)
class Chain:
    """The proven chain of a cycle restore."""
    increments: List[ChainLink] = field(default_factory=list)
    start: Optional[OplogPosition] = None  # the dump's position
    earliest: Optional[OplogPosition] = None  # the earliest point the cycle restores to
    end: Optional[OplogPosition] = None  # the point this plan restores to
    cycle_end: Optional[OplogPosition] = None  # where the cycle ends
    stopped: Optional[str] = None  # allow_gap: why it stopped before the cycle's end
    notes: List[str] = field(default_factory=list)  # checks that could not be made


@dataclass(frozen=True)
class SelectedCollection:
    source: str  # its name at the point restored
    target: str
    dumped_as: Optional[str] = None  # its name in the dump (None: created after the dump)
    dump_documents: Optional[int] = None  # documents the manifest records for it
    entries: Dict[str, int] = field(default_factory=dict)  # oplog entries it receives, by oplog ns


@dataclass(frozen=True)
class Selection:
    collections: List[SelectedCollection]


@dataclass(frozen=True)
class RestoreResult:
    databases: List[DatabaseRestore]
    seconds: float
    replay: Optional[ReplaySummary] = None  # cycles only
    plan: List[IncrementPlan] = field(default_factory=list)  # cycles: the increments replayed
    chain: Optional[Chain] = None  # cycles only
    reached: Optional[OplogPosition] = None  # the point the database now reflects
    selection: Optional[Selection] = None  # with ns_include/ns_exclude/ns_from


def _build(cls: Any, value: Any) -> Any:
    """Builds `cls` (a dataclass, list, dict or optional of them) from decoded JSON."""
    origin = typing.get_origin(cls)
    if origin is Union:
        inner = [a for a in typing.get_args(cls) if a is not type(None)]
        return None if value is None else _build(inner[0], value)
    if origin in (list, List):
        (item,) = typing.get_args(cls)
        return [_build(item, v) for v in value]
    if origin in (dict, Dict):
        _, item = typing.get_args(cls)
        return {k: _build(item, v) for k, v in value.items()}
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: _build(hints[k], v) for k, v in value.items() if k in names})
    return value


def _progress(callback: Optional[Callable[[Progress], None]]) -> Optional[Callable[[dict], None]]:
    if callback is None:
        return None
    return lambda d: callback(Progress(**d))


def backup(*, config: PathLike, progress: Optional[Callable[[Progress], None]] = None) -> BackupResult:
    """Runs one backup as the config file says (full or incremental), under the run lock.

    Raises BusyError when another run holds the lock, ConfigError, Mongo*Error, Storage*Error,
    IntegrityError or LocalIOError otherwise; nothing advances unless the data is stored.
    """
    text = _core.backup_json(config=os.fspath(config), progress=_progress(progress))
    return _build(BackupResult, json.loads(text))


def restore(*, config: PathLike, cycle: Optional[str] = None, full: Optional[str] = None,
            until: Optional[str] = None, target_db: Optional[str] = None, dry_run: bool = False,
            drop: bool = False, oplog_only: bool = False, skip_unknown: bool = False,
            allow_gap: bool = False, local_dir: Optional[PathLike] = None, downloaded: bool = False,
            download_first: bool = False, db_user: Optional[str] = None, db_password: Optional[str] = None,
            progress: Optional[Callable[[Progress], None]] = None,
            ns_include: Sequence[str] = (), ns_exclude: Sequence[str] = (),
            ns_from: Sequence[str] = (), ns_to: Sequence[str] = (),
            identity: Optional[PathLike] = None) -> RestoreResult:
    """Restores a cycle (full dump then every increment, up to `until`) or a full-mode backup.

    `until` is a local time "2015-11-24 18:30:00" or an oplog timestamp "1448361000:1".
    A cycle's chain is proven before anything is written: a missing or damaged archive, a gap, or
    `until` before the cycle raises IntegrityError (`allow_gap` restores up to the first gap
    instead, and says so in `chain.stopped`). Failed documents are counted in the result, not raised.
    `db_user` writes as that user instead of restore_db_user/db_user (password: `db_password`, else
    the environment variable MONGO_OSS_RESTORE_PASSWD).
    `ns_include`/`ns_exclude` (patterns with `*`) and `ns_from`/`ns_to` (pairs, `$name$`
    variables) restore only some collections, possibly under new names, as mongorestore's
    --nsInclude/--nsExclude/--nsFrom/--nsTo, judged on the names at the point restored; the
    replay follows the selection. A target holding documents raises ConfigError unless `drop`.
    `identity` is the age identity file that opens a backup made with encrypt_recipients (else
    MONGO_OSS_AGE_IDENTITY); without it, or with another key, EncryptionError is raised.
    The dump is restored as it downloads, nothing extracted to disk, into temporary collections
    renamed into place once the whole archive is checked; `download_first` downloads and extracts
    it into `local_dir` first and keeps it there (for `downloaded`).
    """
    text = _core.restore_json(config=os.fspath(config), cycle=cycle, full=full, until=until,
                              target_db=target_db, dry_run=dry_run, drop=drop, oplog_only=oplog_only,
                              skip_unknown=skip_unknown, allow_gap=allow_gap,
                              local_dir=None if local_dir is None else os.fspath(local_dir),
                              downloaded=downloaded, download_first=download_first,
                              db_user=db_user, db_password=db_password,
                              progress=_progress(progress), ns_include=list(ns_include),
                              ns_exclude=list(ns_exclude), ns_from=list(ns_from), ns_to=list(ns_to),
                              identity=None if identity is None else os.fspath(identity))
    return _build(RestoreResult, json.loads(text))


def list_cycles(*, config: PathLike) -> Catalog:
    """The cycles and full backups in the bucket, with sizes, time ranges and completeness."""
    return _build(Catalog, json.loads(_core.list_json(config=os.fspath(config))))


def status(*, config: PathLike, max_age_seconds: int = 26 * 3600,
           interval_seconds: Optional[int] = None, prometheus: Optional[PathLike] = None) -> Status:
    """Age of the last successful backup (stale past `max_age_seconds`), the current cycle, and the
    oplog window against the interval between runs (measured, unless given). `prometheus` also
    writes it as a Prometheus textfile for node_exporter (replaced atomically)."""
    text = _core.status_json(config=os.fspath(config), max_age_seconds=max_age_seconds,
                             interval_seconds=interval_seconds,
                             prometheus=None if prometheus is None else os.fspath(prometheus))
    return _build(Status, json.loads(text))


def verify(*, config: PathLike, name: Optional[str] = None, deep: bool = False,
           local_dir: Optional[PathLike] = None, db_user: Optional[str] = None,
           db_password: Optional[str] = None,
           progress: Optional[Callable[[Progress], None]] = None,
           identity: Optional[PathLike] = None) -> VerifyReport:
    """Checks a cycle or full backup (default: the newest cycle) against its manifest; `deep` also
    restores it into a scratch database and compares counts and hashes. Problems are in the
    report (`ok` is False), not raised. `deep` writes as `db_user` when given and opens an encrypted
    backup with `identity`, as restore() does."""
    text = _core.verify_json(config=os.fspath(config), name=name, deep=deep,
                             local_dir=None if local_dir is None else os.fspath(local_dir),
                             db_user=db_user, db_password=db_password, progress=_progress(progress),
                             identity=None if identity is None else os.fspath(identity))
    return _build(VerifyReport, json.loads(text))


def prune(*, config: PathLike, keep: int, dry_run: bool = False) -> PruneReport:
    """Deletes from the bucket the cycles older than the `keep` newest (never the current one)."""
    text = _core.prune_json(config=os.fspath(config), keep=keep, dry_run=dry_run)
    return _build(PruneReport, json.loads(text))
