"""The operator's commands on real servers: list, status, verify (HEAD and --deep), prune, --json, and
the Python API on the same core (typed results, progress callback, GIL released)."""

import json
import os
import re
import threading
import time

import pytest

import mongo_oss_backup as mob
from conftest import expect_ok, oss_config, run_cli, start_secantus, write_config
from datagen import assert_same_database, populate
from scripts_util import error_lines

PREFIX = "mongodb_cycle_backup_titan_"


def folder_installation(tmp_path, mongo, db, **extra):
    values = dict(db_port=str(mongo.port), db_name=db, is_inc_backup="1", full_backup_period="7",
                  storage_url="file://%s" % (tmp_path / "bucket"), db_backup_root_path=str(tmp_path / "root"))
    values.update(extra)
    return write_config(tmp_path / "inst", **values)


def stored_documents(database):
    return sum(database[c["name"]].count_documents({}) for c in database.list_collections()
               if c.get("type", "collection") == "collection")


def cli_json(*args, ok=(0,)):
    r = run_cli(*args, "--json")
    assert r.returncode in ok, r.stdout + r.stderr
    return json.loads(r.stdout), r


def test_cycle_list_status_verify_and_deep(tmp_path, mongo):
    db = "op_cycle"
    client = mongo.client()
    client.drop_database(db)
    populate(client[db], n=300)
    cfg = folder_installation(tmp_path, mongo, db)
    out, _ = cli_json("backup", "--config", str(cfg))
    total = stored_documents(client[db])
    assert out["outcome"] == "full_dump" and out["documents"] == total
    cycle = out["cycle"]
    first = out
    client[db].extra.insert_many([{"_id": i, "v": "x" * i} for i in range(40)])
    client[db].people.update_many({}, {"$set": {"seen": True}})
    out, _ = cli_json("backup", "--config", str(cfg))
    assert out["outcome"] == "increment" and out["entries"] >= 41

    manifest = json.loads((tmp_path / "bucket" / cycle / "manifest.json").read_text())
    assert manifest["tool"] == "mongo-oss-backup" and manifest["version"] == mob.__version__
    full, inc = manifest["archives"]
    assert full["kind"] == "full" and inc["kind"] == "increment"
    stored = (tmp_path / "bucket" / full["key"]).read_bytes()
    assert full["size"] == len(stored)
    import fastcrc
    assert full["crc64"] == str(fastcrc.crc64.xz(stored))
    # Each run's result names the object it stored, as the manifest does; the cron line too.
    for result, entry in ((first, full), (out, inc)):
        assert (result["key"], result["size"], result["crc64"]) == (entry["key"], entry["size"], entry["crc64"])
        assert "stored as %s" % entry["key"] in result["summary"] and entry["crc64"] in result["summary"]
    assert full["collections"]["%s.people" % db]["documents"] == client[db].people.count_documents({})
    assert inc["entries"] == out["entries"] and inc["oplog_from"]["t"] <= inc["oplog_to"]["t"]

    listing, r = cli_json("list", "--config", str(cfg))
    (c,) = listing["cycles"]
    assert c["name"] == cycle and c["complete"] and c["has_manifest"] and len(c["increments"]) == 1
    assert c["increments"][0]["entries"] == inc["entries"]
    # Every archive says when it was made (the full dump: when the cycle started).
    assert c["full"]["created"] == c["started"] and c["increments"][0]["created"]
    r = run_cli("list", "--config", str(cfg))
    expect_ok(r)
    assert cycle in r.stdout and "complete" in r.stdout

    st, _ = cli_json("status", "--config", str(cfg))
    assert st["stale"] is False and st["cycle"] == cycle and st["oplog"]["window_seconds"] >= 0
    assert st["last_backup_age_seconds"] < 60

    report, _ = cli_json("verify", "--config", str(cfg), "--deep")
    assert report["ok"] and report["name"] == cycle
    assert {a["key"] for a in report["archives"]} == {full["key"], inc["key"]}
    deep = report["deep"]
    assert all(col["ok"] for col in deep["collections"]) and len(deep["collections"]) >= 2
    # Every recorded collection was compared, and nothing else (the view "adults" holds no documents).
    assert {col["namespace"] for col in deep["collections"]} == set(full["collections"])
    assert deep["increments"][0]["entries"] == inc["entries"]
    # The increments were replayed into the scratch copy too, and the drill's time recorded.
    assert deep["replay"]["applied"]["i"] == 40 and deep["replay"]["applied"]["u"] >= 1
    assert deep["reached"] == inc["oplog_to"] and deep["restore_seconds"] > 0
    assert not [n for n in client.list_database_names() if n.startswith("verify_")]

    # The Python API gives the same facts, typed.
    listed = mob.list_cycles(config=cfg)
    assert isinstance(listed.cycles[0], mob.Cycle) and listed.cycles[0].increments[0].key == inc["key"]
    assert mob.status(config=cfg).cycle == cycle
    assert mob.verify(config=cfg).ok


def test_verify_detects_truncated_and_replaced_objects_on_oss(tmp_path, mongo, oss_server):
    import alibabacloud_oss_v2 as oss
    db = "op_verify"
    client = mongo.client()
    client.drop_database(db)
    populate(client[db], n=200)
    bucket = oss_server.add_bucket("op-verify")
    cfg = oss_config(tmp_path / "inst", oss_server, bucket, db_port=str(mongo.port), db_name=db,
                     is_inc_backup="1", full_backup_period="7", db_backup_root_path=str(tmp_path / "root"))
    env = {"HTTP_PROXY": oss_server.proxy}
    r = run_cli("backup", "--config", str(cfg), env=env)
    expect_ok(r)
    client[db].more.insert_many([{"_id": i} for i in range(20)])
    r = run_cli("backup", "--config", str(cfg), env=env)
    expect_ok(r)
    r = run_cli("verify", "--config", str(cfg), env=env)
    expect_ok(r)
    assert "CRC64" in r.stdout, r.stdout + r.stderr

    sdk = oss_server.sdk_client()
    keys = [o.key for o in sdk.list_objects_v2(oss.ListObjectsV2Request(bucket=bucket)).contents]
    full_key = next(k for k in keys if k.endswith("full_backup.tar.gz"))
    inc_key = next(k for k in keys if "/inc_backup/" in k)
    original = oss_server.object_bytes(bucket, full_key)
    # Truncated: size differs.
    sdk.put_object(oss.PutObjectRequest(bucket=bucket, key=full_key, body=original[:-100]))
    r = run_cli("verify", "--config", str(cfg), env=env)
    assert r.returncode == 1 and "truncated or replaced" in r.stderr, r.stdout + r.stderr
    assert "BAD  %s" % full_key in r.stdout
    # Replaced with the same size: only the CRC64 differs.
    sdk.put_object(oss.PutObjectRequest(bucket=bucket, key=full_key, body=original))
    inc = oss_server.object_bytes(bucket, inc_key)
    sdk.put_object(oss.PutObjectRequest(bucket=bucket, key=inc_key, body=bytes(reversed(inc))))
    r = run_cli("verify", "--config", str(cfg), env=env)
    assert r.returncode == 1 and "content replaced" in r.stderr, r.stdout + r.stderr
    # Deleted.
    sdk.put_object(oss.PutObjectRequest(bucket=bucket, key=inc_key, body=inc))
    expect_ok(run_cli("verify", "--config", str(cfg), env=env))
    sdk.delete_object(oss.DeleteObjectRequest(bucket=bucket, key=inc_key))
    r = run_cli("verify", "--config", str(cfg), "--json", env=env)
    report = json.loads(r.stdout)
    assert r.returncode == 1 and not report["ok"]
    assert [a["problem"] for a in report["archives"] if not a["ok"]] == ["missing from the bucket"]
    listing = json.loads(run_cli("list", "--config", str(cfg), "--json", env=env).stdout)
    assert listing["cycles"][0]["complete"] is False and listing["cycles"][0]["missing"] == [inc_key]


def test_deep_verify_detects_a_changed_document_count(tmp_path, mongo):
    """A full dump whose archive is rebuilt with one document fewer (and the manifest's size and CRC64
    updated, as a careless repair would) passes the HEAD check but not --deep."""
    import io
    import tarfile
    db = "op_deep"
    client = mongo.client()
    client.drop_database(db)
    client[db].c.insert_many([{"_id": i, "v": i} for i in range(50)])
    cfg = folder_installation(tmp_path, mongo, db)
    out, _ = cli_json("backup", "--config", str(cfg))
    cycle = out["cycle"]
    path = tmp_path / "bucket" / cycle / "full_backup.tar.gz"
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for m, data in members:
            if data is not None and m.name.endswith("c.bson"):
                first_len = int.from_bytes(data[:4], "little")
                data = data[first_len:]  # one document fewer
                m.size = len(data)
            tar.addfile(m, io.BytesIO(data) if data is not None else None)
    path.write_bytes(buf.getvalue())
    manifest_path = tmp_path / "bucket" / cycle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    import fastcrc
    manifest["archives"][0]["size"] = len(buf.getvalue())
    manifest["archives"][0]["crc64"] = str(fastcrc.crc64.xz(buf.getvalue()))
    manifest_path.write_text(json.dumps(manifest))
    expect_ok(run_cli("verify", "--config", str(cfg)))
    r = run_cli("verify", "--config", str(cfg), "--deep")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "%s.c: restored 49 documents" % db in r.stderr and "recorded 50" in r.stderr


def test_status_is_stale_and_warns_of_a_short_oplog(tmp_path):
    # A server of its own with a 100-entry oplog, so that the test can fill it.
    server = start_secantus(tmp_path / "secantus", oplog_max_entries=100)
    try:
        db = "op_status"
        client = server.client()
        cfg = folder_installation(tmp_path, server, db)
        r = run_cli("status", "--config", str(cfg))
        assert r.returncode == 1 and "STALE" in r.stdout and "no successful backup" in r.stderr
        client[db].c.insert_one({"_id": 1})
        expect_ok(run_cli("backup", "--config", str(cfg)))
        expect_ok(run_cli("status", "--config", str(cfg), "--max-age", "1h"))
        record = tmp_path / "root" / "mongo_oss_backup_last_run.json"
        data = json.loads(record.read_text())
        data["finished_at"] -= 7200
        record.write_text(json.dumps(data))
        r = run_cli("status", "--config", str(cfg), "--max-age", "1h")
        assert r.returncode == 1 and "STALE" in r.stdout and "2h0m old" in r.stderr, r.stdout + r.stderr
        # An oplog far from full has pruned nothing: its short span is no risk yet.
        st, r = cli_json("status", "--config", str(cfg), "--max-age", "3h", "--interval", "7d")
        assert st["stale"] is False and st["oplog"]["fill"] < 0.9 and st["oplog"]["at_risk"] is False
        # Full, it holds seconds of writes; runs a week apart cannot be covered.
        client[db].more.insert_many([{"_id": i} for i in range(300)])
        client.admin.command({"secantusAdmin.pruneOplog": 1})
        st, r = cli_json("status", "--config", str(cfg), "--max-age", "3h")
        assert st["oplog"]["fill"] >= 0.9 and st["oplog"]["at_risk"] is True
        assert "the oplog rolled over" in r.stderr and "next run starts a new cycle" in r.stderr
        expect_ok(run_cli("backup", "--config", str(cfg)))
        st, r = cli_json("status", "--config", str(cfg), "--max-age", "3h", "--interval", "7d")
        assert st["oplog"]["at_risk"] is True and "may roll over" in r.stderr
    finally:
        server.stop()


def test_prune_keeps_the_newest_and_the_current(tmp_path, mongo):
    db = "op_prune"
    client = mongo.client()
    client.drop_database(db)
    client[db].c.insert_one({"_id": 1})
    cfg = folder_installation(tmp_path, mongo, db)
    bucket = tmp_path / "bucket"
    made = []
    for n in range(3):
        # Each run after the state file is removed starts a new cycle.
        state = tmp_path / "root" / "mongodb_inc_backup_info.json"
        if state.exists():
            state.unlink()
        out, _ = cli_json("backup", "--config", str(cfg))
        made.append(out["cycle"])
        time.sleep(1.1)
    assert sorted(p.name for p in bucket.iterdir()) == sorted(made)
    out, _ = cli_json("prune", "--config", str(cfg), "--keep", "1", "--dry-run")
    assert out["deleted"] == made[:2] and sorted(p.name for p in bucket.iterdir()) == sorted(made)
    r = run_cli("prune", "--config", str(cfg), "--keep", "1")
    expect_ok(r)
    assert "deleted cycle %s" % made[0] in r.stdout
    left = sorted(p.name for p in bucket.iterdir() if any(p.rglob("*.tar.gz")))
    assert left == [made[2]]
    r = run_cli("prune", "--config", str(cfg))
    assert r.returncode == 2 and "0 means keep every cycle (keep_cycles = 0 or --keep 0)" in r.stderr


def test_python_api_full_mode_progress_and_gil(tmp_path, mongo):
    db = "op_api"
    client = mongo.client()
    client.drop_database(db)
    populate(client[db], n=2000)
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db, is_inc_backup="0",
                       storage_url="file://%s" % (tmp_path / "bucket"), db_backup_root_path=str(tmp_path / "root"))
    updates = []
    ticks = []
    stop = threading.Event()

    def ticker():  # runs only while the engine has released the GIL
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        began = time.monotonic()
        result = mob.backup(config=cfg, progress=updates.append)
        ended = time.monotonic()
    finally:
        stop.set()
        t.join()
    assert isinstance(result, mob.BackupResult) and result.mode == "full"
    total = stored_documents(client[db])
    assert result.documents == total and result.key == result.name + ".tar.gz"
    # The other thread kept running while the engine worked, not only before and after the call.
    during = [x for x in ticks if began < x < ended]
    assert len(during) > 5 and len(during) > 0.3 * (ended - began) / 0.01, (len(during), ended - began)
    assert all(isinstance(u, mob.Progress) for u in updates)
    dumps = [u for u in updates if u.task == "dump %s.people" % db and u.finished]
    assert dumps and dumps[-1].items == client[db].people.count_documents({})
    assert any(u.task.startswith("upload ") and u.finished and u.bytes == u.total for u in updates)
    assert (tmp_path / "bucket" / (result.name + ".manifest.json")).exists()

    listed = mob.list_cycles(config=cfg)
    assert [f.name for f in listed.full_backups] == [result.name]
    assert mob.verify(config=cfg, deep=True).ok
    client.drop_database("op_api_restored")
    restored = mob.restore(config=cfg, full=result.name, target_db="op_api_restored")
    assert isinstance(restored, mob.RestoreResult) and restored.databases[0].database == "op_api_restored"
    assert_same_database(client[db], client["op_api_restored"])
    with pytest.raises(mob.ConfigError):
        mob.restore(config=cfg)
    with pytest.raises(mob.StorageNotFoundError):
        mob.verify(config=cfg, name="no_such_backup")
    with pytest.raises(TypeError):
        mob.backup(cfg)  # keyword-only


def test_s3_backup_verifies_by_size_and_detects_truncation(tmp_path, mongo, moto_s3):
    import boto3
    db = "op_s3"
    client = mongo.client()
    client.drop_database(db)
    client[db].c.insert_many([{"_id": i, "v": "s3 %d" % i} for i in range(100)])
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="mk",
                      aws_secret_access_key="ms")
    s3.create_bucket(Bucket="op-s3")
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db, is_inc_backup="1",
                       full_backup_period="7", storage_url="s3://op-s3?endpoint=%s&region=us-east-1" % moto_s3,
                       accessKeyId="mk", accessKeySecret="ms", db_backup_root_path=str(tmp_path / "root"))
    out, _ = cli_json("backup", "--config", str(cfg))
    r = run_cli("verify", "--config", str(cfg))
    expect_ok(r)
    assert "not reported (size only)" in r.stdout, r.stdout + r.stderr
    key = "%s/full_backup.tar.gz" % out["cycle"]
    body = s3.get_object(Bucket="op-s3", Key=key)["Body"].read()
    s3.put_object(Bucket="op-s3", Key=key, Body=body[:-1])
    r = run_cli("verify", "--config", str(cfg))
    assert r.returncode == 1 and "truncated or replaced" in r.stderr


def test_quiet_and_verbose(tmp_path, mongo):
    db = "op_quiet"
    client = mongo.client()
    client.drop_database(db)
    client[db].c.insert_one({"_id": 1})
    cfg = folder_installation(tmp_path, mongo, db)
    r = run_cli("backup", "--config", str(cfg), "-v")
    expect_ok(r)
    assert " DEBUG " in r.stderr and " INFO " in r.stderr
    client[db].c.insert_one({"_id": 2})
    time.sleep(1.1)
    r = run_cli("backup", "--config", str(cfg), "-q")
    expect_ok(r)
    assert r.stderr == "" and re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d cycle ", r.stdout), r.stdout + r.stderr
    r = run_cli("status", "--config", str(cfg), "--max-age", "soon")
    assert r.returncode == 2 and '"soon" is not a duration' in r.stderr
    r = run_cli("backup", "--config", str(tmp_path / "missing.properties"), "--json")
    assert r.returncode == 2 and json.loads(r.stdout)["error"]["kind"] == "config"
    report = mob.prune(config=cfg, keep=3, dry_run=True)
    assert isinstance(report, mob.PruneReport) and report.deleted == [] and len(report.kept) == 1


def test_tls_is_asked_for_through_the_uri(tmp_path, mongo):
    """db_host as a URI with tls=true: the driver speaks TLS (secantusdb does not, so the handshake
    fails) and the failure is one line, not a hang or a plaintext fallback."""
    db = "op_tls"
    cfg = folder_installation(tmp_path, mongo, db,
                              db_host="mongodb://127.0.0.1:%d/?tls=true&serverSelectionTimeoutMS=3000" % mongo.port)
    r = run_cli("backup", "--config", str(cfg))
    lines = error_lines(r.stderr)
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert "cannot reach MongoDB" in lines[0]


def test_manifest_survives_a_lost_or_damaged_local_copy(tmp_path, mongo):
    db = "op_manifest"
    client = mongo.client()
    client.drop_database(db)
    client[db].c.insert_one({"_id": 0})
    cfg = folder_installation(tmp_path, mongo, db)
    cycle = cli_json("backup", "--config", str(cfg))[0]["cycle"]
    local = tmp_path / "root" / cycle / "manifest.json"
    stored = tmp_path / "bucket" / cycle / "manifest.json"

    local.unlink()  # lost: the bucket's copy is continued
    client[db].c.insert_one({"_id": 1})
    time.sleep(1.1)
    assert cli_json("backup", "--config", str(cfg))[0]["outcome"] == "increment"
    assert [a["kind"] for a in json.loads(stored.read_text())["archives"]] == ["full", "increment"]

    local.write_text("{ damaged")  # damaged: backups go on, the manifest starts again
    client[db].c.insert_one({"_id": 2})
    time.sleep(1.1)
    r = run_cli("backup", "--config", str(cfg))
    expect_ok(r)
    assert "starting the manifest again" in r.stderr, r.stderr
    # The new manifest records again what the bucket holds (sizes and CRC64; the lost ranges are
    # not known any more), so verify still checks every archive.
    archives = json.loads(stored.read_text())["archives"]
    assert [a["kind"] for a in archives] == ["full", "increment", "increment"]
    assert "oplog_from" not in archives[1] and "oplog_from" in archives[2]
    r = run_cli("verify", "--config", str(cfg))
    expect_ok(r)
    assert "not in the manifest" not in r.stdout, r.stdout
    assert "have no recorded range" in r.stdout


def test_two_api_calls_at_once_each_get_their_own_progress(tmp_path, mongo):
    """Progress is the call's own: a backup and a restore running at once in two threads each
    report to their own callback only."""
    client = mongo.client()
    for db in ("op_two_a", "op_two_b"):
        client.drop_database(db)
        populate(client[db], n=3000)
    cfg_a = folder_installation(tmp_path / "a", mongo, "op_two_a", is_inc_backup="0")
    cfg_b = folder_installation(tmp_path / "b", mongo, "op_two_b", is_inc_backup="0")
    name_b = mob.backup(config=cfg_b).name
    client.drop_database("op_two_b_r")
    seen_a, seen_b, errors = [], [], []

    def run(fn):
        try:
            fn()
        except Exception as e:  # surfaced below
            errors.append(e)

    def record(into):
        return lambda p: into.append((time.monotonic(), p))

    threads = [
        threading.Thread(target=run, args=(lambda: mob.backup(config=cfg_a, progress=record(seen_a)),)),
        threading.Thread(target=run, args=(lambda: mob.restore(config=cfg_b, full=name_b, target_db="op_two_b_r",
                                                                 local_dir=tmp_path / "rs",
                                                                 progress=record(seen_b)),)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    # They ran at the same time (else this would test nothing)...
    assert max(seen_a[0][0], seen_b[0][0]) < min(seen_a[-1][0], seen_b[-1][0])
    # ...and each callback heard its own call's tasks only.
    tasks_a = {p.task.split()[0] for _, p in seen_a}
    tasks_b = {p.task.split()[0] for _, p in seen_b}
    assert tasks_a == {"dump", "archive", "upload"}, tasks_a
    assert tasks_b == {"download", "restore"}, tasks_b


def unknown_keys(cls, value, path="$"):
    """Keys of the JSON the core returns that the API's dataclass `cls` would silently drop."""
    import dataclasses
    import typing
    origin = typing.get_origin(cls)
    if origin is typing.Union:
        inner = [a for a in typing.get_args(cls) if a is not type(None)]
        return [] if value is None else unknown_keys(inner[0], value, path)
    if origin is list:
        (item,) = typing.get_args(cls)
        return [k for i, v in enumerate(value) for k in unknown_keys(item, v, "%s[%d]" % (path, i))]
    if origin is dict:
        _, item = typing.get_args(cls)
        return [k for key, v in value.items() for k in unknown_keys(item, v, "%s.%s" % (path, key))]
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        out = []
        for key, v in value.items():
            if key in hints:
                out += unknown_keys(hints[key], v, "%s.%s" % (path, key))
            else:
                out.append("%s.%s" % (path, key))
        return out
    return []


def test_api_dataclasses_match_what_the_core_returns(tmp_path, mongo):
    """Every field the core puts in its JSON has its place in the Python API's dataclasses."""
    from mongo_oss_backup import api
    db = "op_drift"
    client = mongo.client()
    client.drop_database(db)
    populate(client[db], n=50)
    cfg = folder_installation(tmp_path, mongo, db)
    full_cfg = folder_installation(tmp_path / "full", mongo, db, is_inc_backup="0")
    outputs = [(api.BackupResult, cli_json("backup", "--config", str(cfg))[0])]
    client[db].extra.insert_one({"_id": 1})
    time.sleep(1.1)
    outputs.append((api.BackupResult, cli_json("backup", "--config", str(cfg))[0]))
    full = cli_json("backup", "--config", str(full_cfg))[0]
    outputs.append((api.BackupResult, full))
    catalog = cli_json("list", "--config", str(cfg))[0]
    outputs.append((api.Catalog, catalog))
    outputs.append((api.Catalog, cli_json("list", "--config", str(full_cfg))[0]))
    outputs.append((api.Status, cli_json("status", "--config", str(cfg))[0]))
    outputs.append((api.VerifyReport, cli_json("verify", "--config", str(cfg), "--deep")[0]))
    outputs.append((api.VerifyReport, cli_json("verify", "--config", str(full_cfg), "--deep")[0]))
    cycle = catalog["cycles"][0]["name"]
    for extra in (["--dry-run"], ["--target-db", "op_drift_r"]):
        outputs.append((api.RestoreResult, cli_json("restore", "--config", str(cfg), "--cycle", cycle,
                                                    "--local-dir", str(tmp_path / "rs"), *extra)[0]))
    outputs.append((api.RestoreResult, cli_json("restore", "--config", str(full_cfg), "--full", full["name"],
                                                "--target-db", "op_drift_f", "--local-dir", str(tmp_path / "rf"))[0]))
    outputs.append((api.PruneReport, cli_json("prune", "--config", str(cfg), "--keep", "1", "--dry-run")[0]))
    drift = [k for cls, value in outputs for k in unknown_keys(cls, value, cls.__name__)]
    assert drift == [], drift
