"""Helpers for incremental-cycle tests: reading what the bucket holds back into oplog entries."""

import io
import tarfile
from pathlib import Path
from typing import Dict, List

import bson


def oplog_entries_in_archive(data: bytes) -> List[dict]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t:
        for m in t.getmembers():
            if m.name.endswith("/oplog.bson"):
                return bson.decode_all(t.extractfile(m).read())
    return []


def folder_bucket_increments(bucket: Path, cycle: str) -> Dict[str, List[dict]]:
    inc = bucket / cycle / "inc_backup"
    if not inc.is_dir():
        return {}
    return {p.name: oplog_entries_in_archive(p.read_bytes()) for p in sorted(inc.iterdir())}


def ts_key(ts) -> tuple:
    return (ts.time, ts.inc)


def dumped_ids(archive_bytes: bytes, db: str):
    ids = set()
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:gz") as t:
        for m in t.getmembers():
            if m.name.startswith("full_backup/%s/" % db) and m.name.endswith(".bson"):
                ids |= {d["_id"] for d in bson.decode_all(t.extractfile(m).read())}
    return ids


def check_nothing_missing(bucket_files, db, inserted):
    """bucket_files: key → bytes of the current cycle."""
    full = [k for k in bucket_files if k.endswith("full_backup.tar.gz")]
    assert len(full) == 1, sorted(bucket_files)
    in_full = dumped_ids(bucket_files[full[0]], db)
    seen = {}
    for key, data in bucket_files.items():
        if "/inc_backup/" in key:
            for e in oplog_entries_in_archive(data):
                if e["op"] == "i":
                    assert e["o"]["_id"] not in seen, "entry in two increments: %s" % e
                    seen[e["o"]["_id"]] = key
    missing = [i for i in inserted if i not in in_full and i not in seen]
    assert missing == []


def folder_cycle_files(bucket, cycle):
    return {str(p.relative_to(bucket)): p.read_bytes() for p in (bucket / cycle).rglob("*.tar.gz")}
