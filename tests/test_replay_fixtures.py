"""mongod's own oplog entries (../shared/fixtures, from mongo-tools) replayed by our engine:
transactions (small, large partialTxn chains, prepared then committed or aborted, interleaved) reach
the post-image the fixture records, and mongod's DDL entries apply."""

import json
import re
from pathlib import Path

import bson
import pytest
from bson import Timestamp, json_util

from conftest import FIXTURES, expect_ok, run_cli, write_config

TESTDATA = FIXTURES / "mongorestore-testdata"
pytestmark = pytest.mark.skipif(not TESTDATA.is_dir(), reason="../shared/fixtures is absent (a plain clone)")


def cycle_with_oplog(root: Path, cycle: str, db: str, collections, entries) -> None:
    """A downloaded cycle: an empty full dump of `collections`, then one increment of `entries`."""
    full = root / cycle / "full_backup" / db
    full.mkdir(parents=True)
    for coll in collections:
        (full / (coll + ".bson")).write_bytes(b"")
    inc = root / cycle / "inc_backup" / "oplog_20200101000000"
    inc.mkdir(parents=True)
    # The fixtures' cases were logged separately and share timestamps; merged into one oplog they
    # get increasing ones, as a real oplog has (a restore refuses entries out of order).
    ordered = [dict(e, ts=Timestamp(1600000000, n + 1)) for n, e in enumerate(entries)]
    (inc / "oplog.bson").write_bytes(b"".join(bson.encode(e) for e in ordered))


def interleave(streams):
    """Round-robin merge that keeps each case's order (transactions wait for their commit)."""
    out, streams = [], [list(s) for s in streams if s]
    while streams:
        for s in list(streams):
            out.append(s.pop(0))
            if not s:
                streams.remove(s)
    return out


@pytest.mark.parametrize("fixture", ["transactions.json", "transactions-6.1.json"])
def test_transaction_cases_reach_their_post_image(tmp_path, mongo, fixture):
    cases = json_util.loads((TESTDATA / fixture).read_text())
    db = "txntest"
    collections = sorted({c["ns"].split(".", 1)[1] for c in cases.values()})
    cycle = "mongodb_cycle_backup_titan_20200101000000"
    cycle_with_oplog(tmp_path / "rs", cycle, db, collections, interleave(c["ops"] for c in cases.values()))
    client = mongo.client()
    target = "txn_" + fixture.split(".json")[0].replace("-", "_").replace(".", "_")
    client.drop_database(target)
    cfg = write_config(tmp_path, db_port=str(mongo.port), db_name=db, is_upload_to_oss="0")
    r = run_cli("restore", "--config", str(cfg), "--cycle", cycle, "--downloaded", "--local-dir", str(tmp_path / "rs"),
                "--target-db", target, "--drop")
    expect_ok(r)
    for name, case in cases.items():
        coll = case["ns"].split(".", 1)[1]
        got = list(client[target][coll].find().sort("_id", 1))
        assert got == case["postimage"], name
    # mongod wraps its transactions in applyOps: none is counted as logged op by op.
    assert re.search(r"[1-9]\d* transactions? committed, \d+ aborted", r.stdout), r.stdout


def load_entries(path: Path):
    text = path.read_text().strip()
    if text.startswith("["):
        return json_util.loads(text)
    return [json_util.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("db,files,collections", [
    ("test", ["create_index.json", "collMod.json", "commit_index.json", "drop_index.json", "drop_collection.json"],
     ["foo"]),
    ("mongodump_test_db", ["vectored_insert.json", "linked_vectored_inserts.json"], ["coll1"]),
])
def test_mongod_entries_apply(tmp_path, mongo, db, files, collections):
    """mongod's DDL (flat createIndexes, start/commitIndexBuild, collMod TTL, dropIndexes, drop) and its
    7.x batched ("vectored") inserts logged as applyOps under admin.$cmd."""
    entries = [e for f in files for e in load_entries(TESTDATA / "oplogs" / "json" / f)]
    cycle = "mongodb_cycle_backup_titan_20200101000001"
    cycle_with_oplog(tmp_path / "rs", cycle, db, collections, entries)
    client = mongo.client()
    target = "mongod_" + db
    client.drop_database(target)
    cfg = write_config(tmp_path, db_port=str(mongo.port), db_name=db, is_upload_to_oss="0")
    r = run_cli("restore", "--config", str(cfg), "--cycle", cycle, "--downloaded", "--local-dir", str(tmp_path / "rs"),
                "--target-db", target, "--drop")
    expect_ok(r)
    if db == "test":
        # The stream ends with the collection dropped; every step before it applied.
        for step in ("createIndexes=1", "collMod=1", "commitIndexBuild=1", "dropIndexes=1", "drop=1"):
            assert step in r.stdout, (step, r.stdout)
        assert "foo" not in client[target].list_collection_names()
    else:
        inserted = [op for e in entries for op in e["o"]["applyOps"] if op["op"] == "i"]
        assert len(inserted) >= 3
        for op in inserted:
            assert client[target].coll1.find_one({"_id": op["o"]["_id"]}) == op["o"]
