"""Full mode end to end, as an existing installation runs it: start.py (is_inc_backup=0) from cron
into the bucket, then restore_full.py into a fresh database. Every document must come back
byte-identical (compared by _id on the raw BSON), with every index and collection option."""

import json
import re
import sys

import pytest

import datagen
from conftest import (BACKUP_PW, BACKUP_USER, NOBODY_PW, NOBODY_USER, OSS_AK, OSS_SK, RESTORE_PW,
                      RESTORE_USER, expect_ok, free_port, oss_config, run_cli, start_secantus, write_config)
from scripts_util import error_lines, install_scripts, run_script, set_variables


def snapshot(db):
    state = {"collections": datagen.collections(db), "docs": {}, "indexes": {}}
    for name, info in state["collections"].items():
        if info["type"] != "view":
            state["docs"][name] = datagen.raw_documents(db, name)
            state["indexes"][name] = datagen.indexes(db, name)
    return state


def test_full_mode_oss_with_least_privileged_users(tmp_path, mongo_auth, oss_server):
    """Backup as the `backup` role to the OSS test server; restore as readWrite+dbAdmin only."""
    root = mongo_auth.client()
    root.drop_database("app")
    datagen.populate(root.app)
    before = snapshot(root.app)
    bucket = oss_server.add_bucket("full-mode")
    inst = tmp_path / "inst"
    oss_config(inst, oss_server, bucket, db_port=str(mongo_auth.port), db_user=BACKUP_USER, db_passwd=BACKUP_PW,
               db_name="app", db_backup_root_path=str(tmp_path / "backups") + "/")
    install_scripts(inst)
    env = {"HTTP_PROXY": oss_server.proxy}
    r = run_script(inst / "start.py", env=env)
    expect_ok(r)
    name = re.search(r"backup (mongodb_backup_titan_\d{12}):", r.stdout).group(1)
    keys = [o.key for o in oss_server.sdk_client().list_objects_v2(
        __import__("alibabacloud_oss_v2").ListObjectsV2Request(bucket=bucket)).contents]
    assert keys == [name + ".manifest.json", name + ".tar.gz"]
    # Local copies are deleted after the verified upload; the record of the run for `status` stays.
    assert [p.name for p in (tmp_path / "backups").iterdir()] == ["mongo_oss_backup_last_run.json"]
    assert "\x1b" not in r.stdout + r.stderr

    root.drop_database("app")
    script = inst / "restore_full.py"
    set_variables(script, endpoint=oss_server.endpoint, accessKeyId=OSS_AK, accessKeySecret=OSS_SK, bucket=bucket,
                  db_host="127.0.0.1", db_port=mongo_auth.port, db_user=RESTORE_USER, db_passwd=RESTORE_PW,
                  db_name="app", last_circle_backup_dir_name=name, restore_local_temp_path=str(tmp_path / "rs") + "/",
                  has_download_to_local=False, is_drop_old_restore=True)
    text = script.read_text().replace('accessKeySecret = %r' % OSS_SK, 'accessKeySecret = %r\noss_region = "cn-hangzhou"' % OSS_SK)
    script.write_text(text)
    r = run_script(script, env=env)
    expect_ok(r)
    assert "restored app:" in r.stdout and "0 failed documents, 0 failed indexes" in r.stdout
    assert snapshot(root.app) == before


def test_full_mode_folder_bucket_into_fresh_server(tmp_path, mongo):
    src = mongo.client()
    src.drop_database("folderapp")
    datagen.populate(src.folderapp, n=300)
    inst = tmp_path / "inst"
    bucket_dir = tmp_path / "bucket"
    write_config(inst, db_port=str(mongo.port), db_name="folderapp", storage_url="file://%s" % bucket_dir,
                 db_backup_root_path=str(tmp_path / "backups"))
    install_scripts(inst)
    r = run_script(inst / "start.py")
    expect_ok(r)
    [archive] = [p for p in bucket_dir.iterdir() if p.name.endswith(".tar.gz")]
    assert (bucket_dir / archive.name.replace(".tar.gz", ".manifest.json")).exists()
    name = archive.name[: -len(".tar.gz")]

    fresh = start_secantus(tmp_path / "fresh")
    try:
        script = inst / "restore_full.py"
        set_variables(script, storage_url="file://%s" % bucket_dir, db_host="127.0.0.1", db_port=fresh.port,
                      db_user="", db_passwd="", db_name="folderapp", last_circle_backup_dir_name=name,
                      restore_local_temp_path=str(tmp_path / "rs"))
        r = run_script(script)
        expect_ok(r)
        datagen.assert_same_database(src.folderapp, fresh.client().folderapp)
    finally:
        fresh.stop()


def test_full_mode_keeps_local_backup_without_upload(tmp_path, mongo):
    src = mongo.client()
    src.drop_database("localonly")
    src.localonly.c.insert_many([{"_id": i} for i in range(10)])
    inst = tmp_path / "inst"
    write_config(inst, db_port=str(mongo.port), db_name="localonly", is_upload_to_oss="0",
                 db_backup_root_path=str(tmp_path / "backups"))
    install_scripts(inst)
    r = run_script(inst / "start.py")
    expect_ok(r)
    [backup] = [p for p in (tmp_path / "backups").iterdir() if p.is_dir()]
    assert backup.name.startswith("mongodb_backup_titan_")
    assert (backup / "localonly" / "c.bson").stat().st_size > 0
    assert oct(backup.stat().st_mode & 0o777) == "0o700"
    assert oct((backup / "localonly" / "c.bson").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("case", ["wrong_password", "unreachable", "missing_database", "no_privileges"])
def test_full_mode_failures_are_one_line_and_touch_nothing(tmp_path, mongo_auth, oss_server, case):
    mongo_auth.client().errapp.c.replace_one({"_id": 1}, {"_id": 1}, upsert=True)
    bucket = oss_server.add_bucket("full-fail-" + case.replace("_", "-"))
    oss_server.sdk_client().put_object(__import__("alibabacloud_oss_v2").PutObjectRequest(
        bucket=bucket, key="old-backup.tar.gz", body=b"old"))
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "keep-me.txt").write_text("x")
    values = dict(db_port=str(mongo_auth.port), db_user=BACKUP_USER, db_passwd=BACKUP_PW, db_name="errapp",
                  db_backup_root_path=str(backups))
    port = mongo_auth.port
    if case == "wrong_password":
        values["db_passwd"] = "not-the-password"
    elif case == "unreachable":
        port = free_port()
        values["db_port"] = str(port)
    elif case == "missing_database":
        values["db_name"] = "nosuchdb"
    else:
        values.update(db_user=NOBODY_USER, db_passwd=NOBODY_PW)
    inst = tmp_path / "inst"
    oss_config(inst, oss_server, bucket, **values)
    install_scripts(inst)
    r = run_script(inst / "start.py", env={"HTTP_PROXY": oss_server.proxy})
    assert r.returncode == 1, r.stderr
    [line] = error_lines(r.stderr)
    expected = {
        "wrong_password": 'MongoDB authentication failed for user "%s" at 127.0.0.1:%d' % (BACKUP_USER, port),
        "unreachable": "cannot reach MongoDB at 127.0.0.1:%d: connection refused" % port,
        "missing_database": 'database "nosuchdb" does not exist on 127.0.0.1:%d' % port,
        "no_privileges": 'MongoDB user "%s" is not allowed to' % NOBODY_USER,
    }[case]
    assert expected in line
    assert "not-the-password" not in r.stderr + r.stdout
    keys = [o.key for o in oss_server.sdk_client().list_objects_v2(
        __import__("alibabacloud_oss_v2").ListObjectsV2Request(bucket=bucket)).contents]
    assert keys == ["old-backup.tar.gz"]
    # Nothing but the record `status` and the metrics file read: when it failed, and why.
    assert sorted(p.name for p in backups.iterdir()) == ["keep-me.txt", "mongo_oss_backup_last_failure.json"]
    assert (backups / "keep-me.txt").read_text() == "x"
    failure = json.loads((backups / "mongo_oss_backup_last_failure.json").read_text())
    assert expected in failure["error"] and failure["failed_at"] > 0


def test_start_py_without_the_package_uses_the_console_script(tmp_path, mongo):
    """A crontab's interpreter may lack the package: start.py re-runs through mongo-oss-backup."""
    mongo.client().noimport.c.replace_one({"_id": 1}, {"_id": 1}, upsert=True)
    inst = tmp_path / "inst"
    write_config(inst, db_port=str(mongo.port), db_name="noimport", is_upload_to_oss="0",
                 db_backup_root_path=str(tmp_path / "backups"))
    install_scripts(inst)
    import subprocess, sys, os
    # -S: no site-packages, so `import mongo_oss_backup` fails as under a bare Python 2.
    r = subprocess.run([sys.executable, "-S", str(inst / "start.py")], capture_output=True, text=True,
                       env=dict(os.environ), timeout=300)
    expect_ok(r)
    assert "backup mongodb_backup_titan_" in r.stdout
    r = subprocess.run([sys.executable, "-S", str(inst / "start.py")], capture_output=True, text=True,
                       env={"PATH": "/nonexistent"}, timeout=300)
    # The recorded interpreter's bin/ still has the console script.
    expect_ok(r)
def test_start_py_is_valid_python2_syntax(tmp_path):
    """start.py must parse under Python 2: no f-strings, annotations or print statements."""
    import ast
    from pathlib import Path
    source = (Path(__file__).resolve().parent.parent / "python/mongo_oss_backup/scripts/start.py").read_text()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        assert not isinstance(node, ast.JoinedStr), "f-string"
        assert not isinstance(node, (ast.AnnAssign, ast.AsyncFunctionDef, ast.Await, ast.NamedExpr))
        if isinstance(node, ast.FunctionDef):
            assert node.returns is None and all(a.annotation is None for a in node.args.args)
        if isinstance(node, ast.Call):
            assert not any(isinstance(a, ast.Starred) for a in node.args[:-1]), "py3-only call unpacking"
    assert "nonlocal" not in source and "yield from" not in source


def test_every_line_of_a_cron_log_is_dated(tmp_path, mongo):
    """As cron runs it (`>> log 2>&1`): log lines, warnings, errors and the summary all start with the
    time, and each run's last line is its summary or its error."""
    import subprocess
    mongo.client().cronlog.c.replace_one({"_id": 1}, {"_id": 1}, upsert=True)
    inst = tmp_path / "inst"
    cfg = write_config(inst, db_port=str(mongo.port), db_name="cronlog", is_upload_to_oss="0",
                       db_backup_root_path=str(tmp_path / "backups"))
    cfg.chmod(0o644)  # a warning too
    install_scripts(inst)
    log = tmp_path / "cron.log"
    lasts = []
    for port in (mongo.port, free_port()):  # a run that works, one that cannot reach MongoDB
        cfg.write_text(cfg.read_text().replace("db_port = %d" % mongo.port, "db_port = %d" % port))
        with open(log, "a") as out:
            subprocess.run([sys.executable, str(inst / "start.py")], stdout=out, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=300, cwd="/")
        lasts.append(log.read_text().splitlines()[-1])
    lines = [l for l in log.read_text().splitlines() if l.strip()]
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
    assert all(stamp.match(l) for l in lines), [l for l in lines if not stamp.match(l)]
    assert any(" warning: " in l and "mode 0644" in l for l in lines)
    assert " backup mongodb_backup_titan_" in lasts[0] and " error: cannot reach MongoDB" in lasts[1], lasts


def test_next_run_stores_what_a_failed_or_killed_run_left(tmp_path, mongo, oss_server):
    """A backup whose upload failed leaves its archive, dump folder and entry: the next run stores
    and records it before its own. A run killed after its upload completed, before its record:
    the next run records it. A run killed once its archive was finished but before its entry was
    written (as the old start.py left a failed upload: archive and folder, nothing else): the next
    run reads the archive through and stores it. A run killed while dumping leaves an unfinished
    archive and folder: the next run removes them. Every stored backup then verifies and restores."""
    import signal
    client = mongo.client()
    client.drop_database("leftapp")
    datagen.populate(client.leftapp, n=200)
    bucket = oss_server.add_bucket("full-leftovers")
    root = tmp_path / "root"
    cfg = oss_config(tmp_path / "inst", oss_server, bucket, db_port=str(mongo.port), db_name="leftapp",
                     db_backup_root_path=str(root))

    def backup(minute, crash=None):
        env = {"HTTP_PROXY": oss_server.proxy, "MONGO_OSS_BACKUP_TEST_CLOCK": "2026-03-01 10:%02d:00" % minute}
        if crash:
            env["MONGO_OSS_BACKUP_TEST_CRASH"] = crash
        return run_cli("backup", "--config", str(cfg), env=env)

    def names(minute):
        return "mongodb_backup_titan_2026030110%02d" % minute

    def local():
        return sorted(p.name for p in root.iterdir() if not p.name.startswith("mongo_oss_backup"))

    def stored():
        return sorted(p.name.replace("%2F", "/") for p in (oss_server.root / bucket / "objects").iterdir())

    oss_server.fault("500", count=1000, methods=["PUT"])
    try:
        r = backup(0)
    finally:
        oss_server.admin("faults", {"clear": True})
    assert r.returncode == 1 and len(error_lines(r.stderr)) == 1, r.stderr
    assert local() == [names(0), names(0) + ".tar.gz", names(0) + ".tar.gz.entry.json"], local()
    assert stored() == []

    r = backup(1, crash="after_upload")
    assert r.returncode == -signal.SIGABRT, r.stderr
    assert "storing %s.tar.gz, which an earlier run could not store" % names(0) in r.stderr, r.stderr
    assert stored() == [names(0) + ".manifest.json", names(0) + ".tar.gz", names(1) + ".tar.gz"], stored()

    r = backup(2, crash="after_dump")
    assert r.returncode == -signal.SIGABRT, r.stderr
    assert "recording %s.tar.gz, stored by an earlier run that died before recording it" % names(1) in r.stderr
    assert local() == [names(2), names(2) + ".tar.gz"], local()

    r = backup(3, crash="during_dump")
    assert r.returncode == -signal.SIGABRT, r.stderr
    assert "%s.tar.gz is a finished backup that an earlier run did not store" % names(2) in r.stderr, r.stderr
    assert local() == [names(3), names(3) + ".tar.gz"], local()

    r = backup(4, crash="after_manifest")
    assert r.returncode == -signal.SIGABRT, r.stderr
    assert "removing %s.tar.gz and its dump folder" % names(3) in r.stderr, r.stderr
    assert local() == [names(4), names(4) + ".manifest.json", names(4) + ".tar.gz",
                       names(4) + ".tar.gz.entry.json"], local()

    # Recorded already: the next run finds the same bytes, records the same entry, cleans up.
    r = expect_ok(backup(5))
    assert "recording %s.tar.gz, stored by an earlier run" % names(4) in r.stderr, r.stderr
    assert local() == []
    kept = [names(m) for m in (0, 1, 2, 4, 5)]
    assert stored() == sorted([n + ".manifest.json" for n in kept] + [n + ".tar.gz" for n in kept]), stored()
    listed = json.loads(expect_ok(run_cli("list", "--config", str(cfg), "--json",
                                          env={"HTTP_PROXY": oss_server.proxy})).stdout)
    assert [(b["name"], b["has_manifest"]) for b in listed["full_backups"]] == [(n, True) for n in kept]
    for name in kept:
        expect_ok(run_cli("verify", "--config", str(cfg), name, env={"HTTP_PROXY": oss_server.proxy}))
    # Those that had their entry (made at dump time) kept its collection hashes, recorded again or not.
    for name in (names(0), names(1), names(4)):
        manifest = json.loads(oss_server.object_bytes(bucket, name + ".manifest.json"))
        assert manifest["archives"][0]["collections"], manifest
    client.drop_database("leftapp_dst")
    expect_ok(run_cli("restore", "--config", str(cfg), "--full", names(0), "--target-db", "leftapp_dst",
                      env={"HTTP_PROXY": oss_server.proxy}))
    datagen.assert_same_database(client.leftapp, client.leftapp_dst)
