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
