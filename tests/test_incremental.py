"""Incremental cycles (is_inc_backup=1) through start.py, as cron runs it: a full dump per cycle, oplog
increments between, state files in the old scripts' shapes, and no write ever missing."""

import fcntl
import json
import os
import re
import subprocess
import time

import pytest
from bson import Timestamp

from conftest import expect_ok, oss_config, start_secantus, write_config
from inc_util import folder_bucket_increments, oplog_entries_in_archive, ts_key
from scripts_util import error_lines, install_scripts, run_script

PREFIX = "mongodb_cycle_backup_titan_"


def installation(tmp_path, mongo, db, **extra):
    inst = tmp_path / "inst"
    values = dict(db_port=str(mongo.port), db_name=db, is_inc_backup="1", full_backup_period="7",
                  storage_url="file://%s" % (tmp_path / "bucket"), db_backup_root_path=str(tmp_path / "root") + "/")
    values.update(extra)
    write_config(inst, **values)
    install_scripts(inst)
    return inst


def state_a(tmp_path):
    return json.loads((tmp_path / "root" / "mongodb_inc_backup_info.json").read_text())


def run_ok(inst, env=None):
    r = run_script(inst / "start.py", env=env)
    expect_ok(r)
    return r


def writes(client, db, round_no):
    """Inserts, updates, deletes, an index build and a multi-document transaction."""
    c = client[db]
    c.items.insert_many([{"_id": "r%d-%d" % (round_no, i), "n": i, "tags": [i]} for i in range(30)])
    c.items.update_many({"n": {"$lt": 5}}, {"$set": {"touched": round_no}, "$push": {"tags": -1}})
    c.items.delete_many({"n": {"$gt": 25}})
    c.items.create_index([("n", 1), ("r%d" % round_no, -1)], name="n_r%d" % round_no)
    with client.start_session() as s:
        with s.start_transaction():
            c.accounts.insert_one({"_id": "acct%d" % round_no, "balance": 100}, session=s)
            c.items.update_one({"_id": "r%d-0" % round_no}, {"$set": {"paid": True}}, session=s)


def db_entries(client, db, after, upto):
    """Every oplog entry of `db` in (after, upto], read straight from the server."""
    q = {"ts": {"$gt": after, "$lte": upto}, "op": {"$ne": "n"}}
    return [e for e in client.local.oplog.rs.find(q).sort("$natural", 1) if e["ns"].split(".")[0] == db]


def test_two_cycles_contiguous_and_complete(tmp_path, mongo):
    client = mongo.client()
    client.drop_database("incapp")
    client.incapp.items.insert_many([{"_id": "seed%d" % i, "n": i} for i in range(100)])
    inst = installation(tmp_path, mongo, "incapp")

    r = run_ok(inst)
    cycle1 = state_a(tmp_path)["last_circle_backup_dir_name"]
    assert re.fullmatch(PREFIX + r"\d{14}", cycle1) and "full dump of 100 documents" in r.stdout
    bucket = tmp_path / "bucket"
    assert (bucket / cycle1 / "full_backup.tar.gz").is_file()
    b0 = json.loads((tmp_path / "root" / cycle1 / "last.json").read_text())
    start = Timestamp(int(b0["time"]), int(b0["inc"]))

    for round_no in range(3):
        writes(client, "incapp", round_no)
        time.sleep(1.1)  # increments are named by the second
        run_ok(inst)
    r = run_ok(inst)
    assert "nothing new" in r.stdout
    b = json.loads((tmp_path / "root" / cycle1 / "last.json").read_text())
    end = Timestamp(int(b["time"]), int(b["inc"]))

    increments = folder_bucket_increments(bucket, cycle1)
    assert len(increments) == 3
    captured = [e for entries in increments.values() for e in entries]
    expected = db_entries(client, "incapp", start, end)
    assert [ts_key(e["ts"]) for e in captured] == [ts_key(e["ts"]) for e in expected]
    assert len({(ts_key(e["ts"]), str(e.get("o2", e["o"]))) for e in captured}) == len(captured)  # no duplicates
    assert any("lsid" in e for e in captured), "the transaction's entries are captured"
    ranges = [(min(ts_key(e["ts"]) for e in es), max(ts_key(e["ts"]) for e in es)) for es in increments.values()]
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:])), "ranges are ordered and disjoint"
    left = sorted(p.name for p in (tmp_path / "root" / cycle1).rglob("*") if p.is_file())
    assert left == ["last.json", "manifest.json"], "stored archives leave no local copy"

    # Force the next cycle with an old cycle time; the previous cycle's local directory goes.
    info = state_a(tmp_path)
    info["last_circle_backup_time"] = str(int(time.time()) - 8 * 86400)
    (tmp_path / "root" / "mongodb_inc_backup_info.json").write_text(json.dumps(info))
    time.sleep(1.1)
    r = run_ok(inst)
    cycle2 = state_a(tmp_path)["last_circle_backup_dir_name"]
    assert cycle2 != cycle1 and "full dump" in r.stdout
    assert not (tmp_path / "root" / cycle1).exists()
    assert (bucket / cycle2 / "full_backup.tar.gz").is_file() and (bucket / cycle1).is_dir()


def test_empty_database_and_no_new_entries(tmp_path, mongo):
    client = mongo.client()
    client.drop_database("emptyinc")
    inst = installation(tmp_path, mongo, "emptyinc")
    r = run_ok(inst)
    assert "full dump of 0 documents" in r.stdout
    client.otherdb.x.insert_one({"t": time.time()})  # entries of another database only
    time.sleep(1.1)
    r = run_ok(inst)
    assert "nothing new" in r.stdout
    cycle = state_a(tmp_path)["last_circle_backup_dir_name"]
    assert folder_bucket_increments(tmp_path / "bucket", cycle) == {}
    assert not (tmp_path / "root" / cycle / "inc_backup").exists() or \
        list((tmp_path / "root" / cycle / "inc_backup").iterdir()) == []


def test_oplog_rollover_starts_a_new_cycle(tmp_path):
    server = start_secantus(tmp_path / "small", oplog_max_entries=50)
    try:
        client = server.client(user=None)
        client.rolled.c.insert_one({"_id": 0})
        inst = installation(tmp_path, server, "rolled")
        run_ok(inst)
        cycle1 = state_a(tmp_path)["last_circle_backup_dir_name"]
        client.rolled.c.insert_many([{"_id": i} for i in range(1, 1500)])
        client.admin.command({"secantusAdmin.pruneOplog": 1})
        time.sleep(1.1)
        r = run_ok(inst)
        cycle2 = state_a(tmp_path)["last_circle_backup_dir_name"]
        assert cycle2 != cycle1
        [warning] = [line for line in r.stderr.splitlines() if "rolled over" in line]
        assert "WARN" in warning and "starting a new cycle with a full dump now" in warning
        assert "full dump of 1500 documents" in r.stdout
    finally:
        server.stop()


def test_old_installation_is_continued(tmp_path, mongo):
    """A root and bucket as the old scripts left them: the cycle goes on, not restarted."""
    client = mongo.client()
    client.drop_database("legacy")
    client.legacy.c.insert_one({"_id": 1})
    newest = client.local.oplog.rs.find().sort("$natural", -1).limit(1).next()["ts"]
    cycle = PREFIX + "20151124141133"
    root = tmp_path / "root"
    (root / cycle).mkdir(parents=True)
    (root / "mongodb_inc_backup_info.json").write_text(
        '{"last_circle_backup_time": "%d", "last_circle_backup_dir_name": "%s"}' % (time.time() - 3600, cycle))
    (root / cycle / "last.json").write_text('{"time": "%d", "inc": "%d"}' % (newest.time, newest.inc))
    (tmp_path / "bucket" / cycle).mkdir(parents=True)
    (tmp_path / "bucket" / cycle / "full_backup.tar.gz").write_bytes(b"old scripts' archive")
    old_lock = tmp_path / "inst" / "backup.lock"
    inst = installation(tmp_path, mongo, "legacy")
    old_lock.write_text("")  # the old scripts' plain lock file, left by a crash
    client.legacy.c.insert_one({"_id": 2})
    r = run_ok(inst)
    assert "cycle %s: increment oplog_" % cycle in r.stdout
    assert state_a(tmp_path)["last_circle_backup_dir_name"] == cycle
    [(name, entries)] = folder_bucket_increments(tmp_path / "bucket", cycle).items()
    assert [e["o"]["_id"] for e in entries] == [2]
    assert set(json.loads((root / cycle / "last.json").read_text())) == {"time", "inc"}


def test_old_scripts_failed_upload_is_stored_not_removed(tmp_path, mongo):
    """The old start.py advanced B even when an increment's upload failed, kept the archive and
    never tried again: the bucket's chain has a hole only that archive fills. The first run after
    the switch-over reads it through and stores it, byte for byte; an archive cut short beside it
    is no backup and is removed."""
    import bson
    import io
    import tarfile
    client = mongo.client()
    client.drop_database("legacy_hole")
    client.legacy_hole.c.insert_one({"_id": 1})
    [entry] = list(client.local.oplog.rs.find({"ns": "legacy_hole.c", "op": "i"}))
    cycle = PREFIX + "20151124141133"
    root = tmp_path / "root"
    inc = root / cycle / "inc_backup"
    (inc / "oplog_20151124151133").mkdir(parents=True)
    (inc / "oplog_20151124151133" / "oplog.bson").write_bytes(bson.encode(entry))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:  # as the old scripts' Python tarfile wrote it
        t.add(inc / "oplog_20151124151133", arcname="oplog_20151124151133")
    (inc / "oplog_20151124151133.tar.gz").write_bytes(buf.getvalue())
    (inc / "oplog_20151124150000.tar.gz").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    # Another one whose key the bucket holds with other bytes: never overwritten, kept, said.
    (inc / "oplog_20151124152000.tar.gz").write_bytes(buf.getvalue())
    (root / "mongodb_inc_backup_info.json").write_text(
        '{"last_circle_backup_time": "%d", "last_circle_backup_dir_name": "%s"}' % (time.time() - 3600, cycle))
    # B moved past the increment whose upload failed.
    (root / cycle / "last.json").write_text('{"time": "%d", "inc": "%d"}' % (entry["ts"].time, entry["ts"].inc))
    (tmp_path / "bucket" / cycle).mkdir(parents=True)
    (tmp_path / "bucket" / cycle / "full_backup.tar.gz").write_bytes(b"old scripts' archive")
    (tmp_path / "bucket" / cycle / "inc_backup").mkdir()
    (tmp_path / "bucket" / cycle / "inc_backup" / "oplog_20151124152000.tar.gz").write_bytes(b"other bytes")
    inst = installation(tmp_path, mongo, "legacy_hole")
    client.legacy_hole.c.insert_one({"_id": 2})
    r = run_ok(inst)
    assert "oplog_20151124151133.tar.gz was left unstored by the old scripts: storing it" in r.stderr, r.stderr
    stored = tmp_path / "bucket" / cycle / "inc_backup"
    assert (stored / "oplog_20151124151133.tar.gz").read_bytes() == buf.getvalue()
    assert not (stored / "oplog_20151124150000.tar.gz").exists()
    assert "refusing to overwrite %s/inc_backup/oplog_20151124152000.tar.gz" % cycle in r.stderr, r.stderr
    assert (stored / "oplog_20151124152000.tar.gz").read_bytes() == b"other bytes"
    assert sorted(p.name for p in inc.glob("oplog_20151124*")) == ["oplog_20151124152000.tar.gz"]
    [new] = [p for p in stored.iterdir() if not p.name.startswith("oplog_20151124")]
    ids = [e["o"]["_id"] for archive in (stored / "oplog_20151124151133.tar.gz", new)
           for e in oplog_entries_in_archive(archive.read_bytes()) if e["op"] == "i"]
    assert ids == [1, 2], ids
    manifest = json.loads((tmp_path / "bucket" / cycle / "manifest.json").read_text())
    assert "%s/inc_backup/oplog_20151124151133.tar.gz" % cycle in [a["key"] for a in manifest["archives"]]


def test_concurrent_run_exits_0_with_one_line(tmp_path, mongo):
    mongo.client().locked.c.insert_one({"x": 1})
    inst = installation(tmp_path, mongo, "locked")
    holder = subprocess.Popen(["python3", "-c", "import fcntl,sys,time;f=open(sys.argv[1],'a+');"
                               "fcntl.flock(f,fcntl.LOCK_EX);f.truncate(0);f.write('4242');f.flush();"
                               "print('held',flush=True);time.sleep(60)", str(inst / "backup.lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = run_script(inst / "start.py")
        expect_ok(r)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d another backup is running \(pid 4242\); this run does nothing",
                            r.stderr.strip()), r.stderr
        assert not (tmp_path / "root" / "mongodb_inc_backup_info.json").exists()
    finally:
        holder.kill()
        holder.wait()
    run_ok(inst)  # the lock died with its holder


def test_standalone_server(tmp_path):
    import shutil
    from conftest import ServerProcess, free_port, _ping
    port = free_port()
    proc = ServerProcess("standalone", [shutil.which("secantusd-py"), "--host", "127.0.0.1", "--port", str(port),
                                        "--storage-path", str(tmp_path / "sa"), "--standalone"], port, tmp_path / "sa-w")
    proc.start(lambda: _ping(port))
    try:
        import pymongo
        pymongo.MongoClient("127.0.0.1", port, directConnection=True).solo.c.insert_one({"_id": 1})

        class S:
            pass
        s = S()
        s.port = port
        inst = installation(tmp_path, s, "solo")
        r = run_script(inst / "start.py")
        assert r.returncode == 2
        [line] = error_lines(r.stderr)
        assert "standalone server without an oplog" in line and "is_inc_backup=0" in line
        write_config(inst, db_port=str(port), db_name="solo", is_inc_backup="0",
                     storage_url="file://%s" % (tmp_path / "bucket"), db_backup_root_path=str(tmp_path / "root"))
        run_ok(inst)
    finally:
        proc.stop()


def test_failed_upload_is_kept_and_stored_first_next_time(tmp_path, mongo, oss_server):
    client = mongo.client()
    client.drop_database("flaky")
    client.flaky.c.insert_one({"_id": 0})
    bucket = oss_server.add_bucket("inc-flaky")
    inst = tmp_path / "inst"
    oss_config(inst, oss_server, bucket, db_port=str(mongo.port), db_name="flaky", is_inc_backup="1",
               full_backup_period="7", db_backup_root_path=str(tmp_path / "root"))
    install_scripts(inst)
    env = {"HTTP_PROXY": oss_server.proxy}
    run_ok(inst, env)
    cycle = state_a(tmp_path)["last_circle_backup_dir_name"]
    b_before = (tmp_path / "root" / cycle / "last.json").read_text()
    client.flaky.c.insert_one({"_id": 1})
    time.sleep(1.1)
    oss_server.fault("503", count=1000, methods=["PUT"])
    r = run_script(inst / "start.py", env=env)
    oss_server.admin("faults", {"clear": True})
    assert r.returncode == 1
    assert len(error_lines(r.stderr)) == 1
    pending = list((tmp_path / "root" / cycle / "inc_backup").glob("oplog_*.tar.gz"))
    assert len(pending) == 1 and pending[0].with_name(pending[0].name + ".pos.json").exists()
    assert (tmp_path / "root" / cycle / "last.json").read_text() == b_before  # B did not advance

    client.flaky.c.insert_one({"_id": 2})
    time.sleep(1.1)
    r = run_ok(inst, env)
    first = "stored %s/inc_backup/%s, left unstored by an earlier run" % (cycle, pending[0].name)
    assert r.stdout.splitlines()[0][len("2026-12-01 18:31:50 "):] == first
    client_oss = oss_server.sdk_client()
    import alibabacloud_oss_v2 as oss
    keys = [o.key for o in client_oss.list_objects_v2(oss.ListObjectsV2Request(bucket=bucket, prefix=cycle + "/inc_backup/")).contents]
    assert len(keys) == 2
    ids = []
    for k in keys:
        body = client_oss.get_object(oss.GetObjectRequest(bucket=bucket, key=k)).body.read()
        ids += [e["o"]["_id"] for e in oplog_entries_in_archive(body) if e["op"] == "i"]
    assert ids == [1, 2]
    assert not pending[0].exists()


def test_writer_during_runs_across_two_cycles(tmp_path, mongo):
    """A writer inserts without pause while start.py runs every few seconds, across two cycles:
    everything inserted is in the last cycle's full dump or in exactly one of its increments, and
    the first cycle's increments are contiguous."""
    import threading
    from inc_util import check_nothing_missing, folder_cycle_files
    client = mongo.client()
    client.drop_database("busy")
    inserted, stop = [], threading.Event()

    def writer():
        n = 0
        while not stop.is_set():
            ids = ["w%d" % (n + i) for i in range(20)]
            client.busy.c.insert_many([{"_id": i, "pad": "x" * 200} for i in ids])
            inserted.extend(ids)
            n += 20
            time.sleep(0.01)

    inst = installation(tmp_path, mongo, "busy")
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        run_ok(inst)
        cycle1 = state_a(tmp_path)["last_circle_backup_dir_name"]
        for _ in range(2):
            time.sleep(1.1)
            run_ok(inst)
        info = state_a(tmp_path)
        info["last_circle_backup_time"] = str(int(time.time()) - 8 * 86400)
        (tmp_path / "root" / "mongodb_inc_backup_info.json").write_text(json.dumps(info))
        for _ in range(3):
            time.sleep(1.1)
            run_ok(inst)
    finally:
        stop.set()
        thread.join()
    time.sleep(1.1)
    run_ok(inst)
    cycle2 = state_a(tmp_path)["last_circle_backup_dir_name"]
    assert cycle2 != cycle1
    check_nothing_missing(folder_cycle_files(tmp_path / "bucket", cycle2), "busy", inserted)
    ranges = [(min(ts_key(e["ts"]) for e in es), max(ts_key(e["ts"]) for e in es))
              for es in folder_bucket_increments(tmp_path / "bucket", cycle1).values()]
    assert len(ranges) == 2 and ranges[0][1] < ranges[1][0]


def test_keep_cycles_prunes_the_bucket(tmp_path, mongo):
    client = mongo.client()
    client.pruned.c.replace_one({"_id": 1}, {"_id": 1}, upsert=True)
    inst = installation(tmp_path, mongo, "pruned", keep_cycles="2")
    cycles = []
    for _ in range(3):
        r = run_ok(inst)
        cycles.append(state_a(tmp_path)["last_circle_backup_dir_name"])
        info = state_a(tmp_path)
        info["last_circle_backup_time"] = str(int(time.time()) - 8 * 86400)
        (tmp_path / "root" / "mongodb_inc_backup_info.json").write_text(json.dumps(info))
        time.sleep(1.1)
    bucket = tmp_path / "bucket"
    stored = {p.relative_to(bucket).parts[0] for p in bucket.rglob("*") if p.is_file()}
    assert sorted(stored) == cycles[1:]
    assert "keep_cycles=2: deleted cycle %s" % cycles[0] in r.stderr
