"""A cycle exactly as the old Python 2 scripts left it in the bucket — full_backup.tar.gz made by
Python's tarfile around a mongodump directory with 3.0-era metadata, and increments whose oplog.bson
holds MongoDB 3.0 entries (h, v, unversioned $set/$unset updates) — restores with restore_inc.py."""

import io
import json
import tarfile
import time

import bson
import fastcrc
import pytest
from bson import Int64, Timestamp

from conftest import FIXTURES, expect_ok, run_cli, start_secantus, write_config
from datagen import assert_same_database
from scripts_util import install_scripts, run_script, set_variables

TESTDATA = FIXTURES / "mongorestore-testdata"
needs_fixtures = pytest.mark.skipif(not TESTDATA.is_dir(), reason="../shared/fixtures is absent (a plain clone)")


def tar_gz(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:  # what the old scripts' tarfile calls made
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def entry(ts, op, ns, o, o2=None):
    e = {"ts": Timestamp(1448345500 + ts, 1), "h": Int64(ts * 7919), "v": 2, "op": op, "ns": ns, "o": o}
    if o2 is not None:
        e["o2"] = o2
    return e


@needs_fixtures
def test_old_cycle_restores(tmp_path):
    # Full dump: mongo-tools' testdirs/db1 (3.0-era metadata with ns and v:1 indexes) as database "chen".
    src = TESTDATA / "testdirs" / "db1"
    members = [("full_backup/chen/%s" % f.name, f.read_bytes()) for f in sorted(src.iterdir()) if f.is_file()]
    c1 = bson.decode_all((src / "c1.bson").read_bytes())
    cycle = "mongodb_cycle_backup_titan_20151124141133"
    bucket = tmp_path / "bucket" / cycle
    (bucket / "inc_backup").mkdir(parents=True)
    (bucket / "full_backup.tar.gz").write_bytes(tar_gz(members))
    first_id = c1[0]["_id"]
    inc1 = [entry(1, "i", "chen.c1", {"_id": "new", "x": 1}),
            entry(2, "u", "chen.c1", {"$set": {"x": 2, "y.z": 3}}, {"_id": "new"}),
            entry(3, "u", "chen.c1", {"$unset": {"x": 1}}, {"_id": "new"}),
            entry(4, "d", "chen.c1", {"_id": first_id})]
    # The old scripts read the position before dumping the oplog: an increment may repeat the last
    # entries of the one before it.
    inc2 = [entry(4, "d", "chen.c1", {"_id": first_id}),
            entry(5, "c", "chen.$cmd", {"create": "fresh"}),
            entry(6, "i", "chen.fresh", {"_id": 1, "v": "ok"}),
            entry(7, "i", "chen.system.indexes", {"v": 1, "key": {"v": 1}, "name": "v_1", "ns": "chen.fresh"}),
            entry(8, "n", "", {"msg": "periodic noop"})]
    for name, entries in (("oplog_20151124150000", inc1), ("oplog_20151124160000", inc2)):
        data = b"".join(bson.encode(e) for e in entries)
        (bucket / "inc_backup" / (name + ".tar.gz")).write_bytes(tar_gz([(name + "/oplog.bson", data)]))

    server = start_secantus(tmp_path / "server")
    try:
        inst = install_scripts(tmp_path / "inst")
        script = inst / "restore_inc.py"
        set_variables(script, storage_url="file://%s" % (tmp_path / "bucket"), db_host="127.0.0.1",
                      db_port=server.port, db_user="", db_passwd="", db_name="chen",
                      last_circle_backup_dir_name=cycle, restore_local_temp_path=str(tmp_path / "rs") + "/")
        r = run_script(script)
        expect_ok(r)
        db = server.client(user=None).chen
        assert db.c1.find_one({"_id": "new"}) == {"_id": "new", "y": {"z": 3}}
        assert db.c1.find_one({"_id": first_id}) is None
        assert db.c1.count_documents({}) == len(c1)  # one inserted, one deleted
        assert db.fresh.find_one() == {"_id": 1, "v": "ok"}
        assert "v_1" in [i["name"] for i in db.fresh.list_indexes()]
        assert "1 skipped" in r.stdout  # the no-op
        assert "1 repeated entries applied once" in r.stdout
        assert "note: no manifest" in r.stdout  # the checks that could not be made are said

        # Without a manifest, list and verify go by what the bucket holds.
        cfg = write_config(tmp_path / "ops", db_port=str(server.port), db_name="chen", is_inc_backup="1",
                           full_backup_period="7", storage_url="file://%s" % (tmp_path / "bucket"),
                           db_backup_root_path=str(tmp_path / "opsroot"))
        listing = json.loads(run_cli("list", "--config", str(cfg), "--json").stdout)
        (c,) = listing["cycles"]
        assert c["name"] == cycle and c["complete"] and not c["has_manifest"] and len(c["increments"]) == 2
        assert c["started"] == "2015-11-24 14:11:33" and c["covers_to"] == "2015-11-24 16:00:00"
        r = run_cli("verify", "--config", str(cfg), "--deep")
        expect_ok(r)
        assert "no manifest" in r.stdout and "chen.c1: %d documents" % len(c1) in r.stdout
        assert "oplog_20151124160000.tar.gz: 5 oplog entries" in r.stdout
    finally:
        server.stop()


def test_cycle_continued_from_the_old_scripts_is_verified_with_its_dump(tmp_path, mongo):
    """A cycle the old scripts began (their full dump in the bucket, their state files) continued
    by us: its manifest records that dump too (size and CRC64 from the bucket, position from
    last.json), so verify checks it and a restore compares it."""
    db = "oldcont"
    client = mongo.client()
    client.drop_database(db)
    client[db].c.insert_many([{"_id": i, "v": "old"} for i in range(40)])
    position = client.local.oplog.rs.find().sort("$natural", -1).limit(1).next()["ts"]
    dump = b"".join(bson.encode(d) for d in client[db].c.find().sort("_id", 1))
    metadata = json.dumps({"options": {}, "indexes": [{"v": 2, "key": {"_id": 1}, "name": "_id_"}]}).encode()
    full = tar_gz([("full_backup/%s/c.bson" % db, dump), ("full_backup/%s/c.metadata.json" % db, metadata)])
    cycle = "mongodb_cycle_backup_titan_" + time.strftime("%Y%m%d%H%M%S")
    (tmp_path / "bucket" / cycle).mkdir(parents=True)
    (tmp_path / "bucket" / cycle / "full_backup.tar.gz").write_bytes(full)
    root = tmp_path / "root"
    (root / cycle).mkdir(parents=True)
    (root / "mongodb_inc_backup_info.json").write_text(json.dumps(
        {"last_circle_backup_time": str(time.time()), "last_circle_backup_dir_name": cycle}))
    (root / cycle / "last.json").write_text(json.dumps({"time": str(position.time), "inc": str(position.inc)}))
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db, is_inc_backup="1",
                       full_backup_period="7", storage_url="file://%s" % (tmp_path / "bucket"),
                       db_backup_root_path=str(root))
    client[db].c.insert_many([{"_id": "new-%d" % i} for i in range(5)])
    client[db].c.update_many({"_id": {"$lt": 5}}, {"$set": {"v": "new"}})
    time.sleep(1.1)
    r = run_cli("backup", "--config", str(cfg), "--json")
    expect_ok(r)
    out = json.loads(r.stdout)
    assert out["cycle"] == cycle and out["outcome"] == "increment", out

    manifest = json.loads((tmp_path / "bucket" / cycle / "manifest.json").read_text())
    recorded = next(a for a in manifest["archives"] if a["kind"] == "full")
    assert recorded["key"] == "%s/full_backup.tar.gz" % cycle
    assert recorded["size"] == len(full) and recorded["crc64"] == str(fastcrc.crc64.xz(full))
    assert recorded["oplog_start"] == {"t": position.time, "i": position.inc}
    report = json.loads(run_cli("verify", "--config", str(cfg), "--json").stdout)
    assert report["ok"] and report["unrecorded"] == [], report
    assert recorded["key"] in [a["key"] for a in report["archives"]]

    target = db + "_restored"
    client.drop_database(target)
    r = run_cli("restore", "--config", str(cfg), "--cycle", cycle, "--target-db", target,
                "--local-dir", str(tmp_path / "rs"))
    expect_ok(r)
    assert_same_database(client[db], client[target])

    (tmp_path / "bucket" / cycle / "full_backup.tar.gz").write_bytes(full[:-8])
    r = run_cli("verify", "--config", str(cfg))
    assert r.returncode == 1 and "BAD  %s/full_backup.tar.gz" % cycle in r.stdout, r.stdout
