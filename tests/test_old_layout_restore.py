"""A cycle exactly as the old Python 2 scripts left it in the bucket — full_backup.tar.gz made by
Python's tarfile around a mongodump directory with 3.0-era metadata, and increments whose oplog.bson
holds MongoDB 3.0 entries (h, v, unversioned $set/$unset updates) — restores with restore_inc.py."""

import io
import json
import tarfile

import bson
import pytest
from bson import Int64, Timestamp

from conftest import FIXTURES, run_cli, start_secantus, write_config
from scripts_util import install_scripts, run_script, set_variables

TESTDATA = FIXTURES / "mongorestore-testdata"
pytestmark = pytest.mark.skipif(not TESTDATA.is_dir(), reason="../shared/fixtures is absent (a plain clone)")


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
    inc2 = [entry(5, "c", "chen.$cmd", {"create": "fresh"}),
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
        assert r.returncode == 0, r.stdout + r.stderr
        db = server.client(user=None).chen
        assert db.c1.find_one({"_id": "new"}) == {"_id": "new", "y": {"z": 3}}
        assert db.c1.find_one({"_id": first_id}) is None
        assert db.c1.count_documents({}) == len(c1)  # one inserted, one deleted
        assert db.fresh.find_one() == {"_id": 1, "v": "ok"}
        assert "v_1" in [i["name"] for i in db.fresh.list_indexes()]
        assert "1 skipped" in r.stdout  # the no-op

        # Without a manifest, list and verify go by what the bucket holds.
        cfg = write_config(tmp_path / "ops", db_port=str(server.port), db_name="chen", is_inc_backup="1",
                           full_backup_period="7", storage_url="file://%s" % (tmp_path / "bucket"),
                           db_backup_root_path=str(tmp_path / "opsroot"))
        listing = json.loads(run_cli("list", "--config", str(cfg), "--json").stdout)
        (c,) = listing["cycles"]
        assert c["name"] == cycle and c["complete"] and not c["has_manifest"] and len(c["increments"]) == 2
        assert c["started"] == "2015-11-24 14:11:33" and c["covers_to"] == "2015-11-24 16:00:00"
        r = run_cli("verify", "--config", str(cfg), "--deep")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "no manifest" in r.stdout and "chen.c1: %d documents" % len(c1) in r.stdout
        assert "oplog_20151124160000.tar.gz: 4 oplog entries" in r.stdout
    finally:
        server.stop()
