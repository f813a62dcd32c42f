"""Defects a new user met, each now a test: a folder bucket holds whole databases, so it is private
(0600/0700 whatever the umask); a storage check that fails stops the run before the dump; a missing
bucket folder (an unmounted share) is refused instead of created; two full backups in one minute
both stay; install-scripts run again keeps the settings a user wrote into restore_inc.py."""

import ast
import json
import os
import stat
import subprocess
import shutil
import time

import pytest

from conftest import expect_ok, free_port, run_cli, write_config
from scripts_util import install_scripts, one_error, set_variables


def backup(cfg, umask=None, clock=None):
    exe = shutil.which("mongo-oss-backup")
    env = dict(os.environ, MONGO_OSS_BACKUP_TEST_CLOCK=clock) if clock else None
    return subprocess.run([exe, "backup", "--config", str(cfg)], capture_output=True, text=True, timeout=300,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None, env=env)


def test_folder_bucket_is_private_under_umask_022(tmp_path, mongo):
    db = "bucket_modes"
    client = mongo.client()
    client.drop_database(db)
    client[db].c.insert_many([{"_id": i} for i in range(20)])
    bucket = tmp_path / "bucket"
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db, is_inc_backup="1",
                       full_backup_period="7", storage_url="file://%s" % bucket,
                       db_backup_root_path=str(tmp_path / "root"))
    expect_ok(backup(cfg, umask=0o022))
    client[db].c.insert_one({"_id": "more"})
    time.sleep(1.1)
    expect_ok(backup(cfg, umask=0o022))
    paths = [bucket, *bucket.rglob("*")]
    assert len([p for p in paths if p.name.endswith(".tar.gz")]) == 2
    for p in paths:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), "%s is %o" % (p, mode)


def test_missing_bucket_folder_is_refused_before_the_dump(tmp_path, mongo):
    db = "bucket_missing"
    mongo.client()[db].c.replace_one({"_id": 1}, {"_id": 1}, upsert=True)
    share = tmp_path / "nas" / "backups"  # a share that is not mounted
    root = tmp_path / "root"
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db, storage_url="file://%s" % share,
                       db_backup_root_path=str(root), create_bucket_folder="0")
    one_error(backup(cfg), "the bucket folder %s does not exist" % share, "create_bucket_folder=1")
    assert not share.exists() and not any(root.rglob("*.bson*"))
    # Allowed when asked for, or when the folder lies inside the local root.
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db, storage_url="file://%s" % share,
                       db_backup_root_path=str(root), create_bucket_folder="1")
    expect_ok(backup(cfg))
    inside = root / "bucket"
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db, storage_url="file://%s" % inside,
                       db_backup_root_path=str(root), create_bucket_folder="0")
    expect_ok(backup(cfg))
    assert any(inside.glob("*.tar.gz"))
    # Reading never creates it.
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db,
                       storage_url="file://%s" % (tmp_path / "gone"), db_backup_root_path=str(root))
    r = run_cli("list", "--config", str(cfg))
    one_error(r, "does not exist")
    assert not (tmp_path / "gone").exists()


@pytest.mark.parametrize("case", ["plain_file", "unknown_host"])
def test_failed_storage_check_stops_before_the_dump(tmp_path, mongo, case):
    db = "bucket_check"
    mongo.client()[db].c.replace_one({"_id": 1}, {"_id": 1}, upsert=True)
    root = tmp_path / "root"
    values = dict(db_port=str(mongo.port), db_name=db, db_backup_root_path=str(root), storage_timeout_seconds="2")
    if case == "plain_file":
        target = tmp_path / "bucket"
        target.write_text("not a folder")
        cfg = write_config(tmp_path / "inst", storage_url="file://%s" % target, **values)
        words = ("the bucket folder %s is not a directory" % target,)
    else:
        cfg = write_config(tmp_path / "inst", endpoint="http://no-such-host.invalid:%d" % free_port(),
                           bucket="bk-check", accessKeyId="ak", accessKeySecret="sk", oss_region="cn-hangzhou", **values)
        words = ("cannot reach the storage endpoint http://no-such-host.invalid", "host name not found")
    started = time.monotonic()
    r = backup(cfg)
    one_error(r, *words)
    assert time.monotonic() - started < 120
    assert not root.exists() or not any(p.is_dir() for p in root.iterdir())  # no dump was started
    # Retries are one short line each, without the library's internals.
    for line in r.stderr.splitlines():
        assert "context: {" not in line and "service:" not in line, line


def test_two_full_backups_in_one_minute_both_stay(tmp_path, mongo):
    db = "bucket_minute"
    client = mongo.client()
    client.drop_database(db)
    client[db].c.insert_one({"_id": 1, "v": "first"})
    bucket = tmp_path / "bucket"
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db, storage_url="file://%s" % bucket,
                       db_backup_root_path=str(tmp_path / "root"))
    # Both runs in the same minute: the clock stands still.
    minute = time.strftime("%Y-%m-%d %H:%M:10")
    expect_ok(backup(cfg, clock=minute))
    [first] = [p for p in bucket.iterdir() if p.name.endswith(".tar.gz")]
    first_bytes = first.read_bytes()
    client[db].c.update_one({"_id": 1}, {"$set": {"v": "second"}})
    r = backup(cfg, clock=minute)
    expect_ok(r)
    archives = sorted(p.name for p in bucket.iterdir() if p.name.endswith(".tar.gz"))
    assert len(archives) == 2 and archives[0] == first.name, archives
    assert first.read_bytes() == first_bytes
    assert archives[1].startswith(first.name[: -len(".tar.gz")])  # the same minute, seconds added
    names = [f["name"] for f in json.loads(run_cli("list", "--config", str(cfg), "--json").stdout)["full_backups"]]
    assert names == [a[: -len(".tar.gz")] for a in archives]
    # A full backup whose archive no longer matches its manifest is refused, nothing written.
    first.write_bytes(first_bytes[:-20])
    target = db + "_restored"
    client.drop_database(target)
    r = run_cli("restore", "--config", str(cfg), "--full", names[0], "--target-db", target,
                "--local-dir", str(tmp_path / "rs"))
    one_error(r, "%s: the bucket holds %d bytes" % (first.name, len(first_bytes) - 20),
              "the manifest recorded %d" % len(first_bytes), "nothing was restored")
    assert target not in client.list_database_names()


def test_install_scripts_again_keeps_an_edited_restore_script(tmp_path):
    inst = install_scripts(tmp_path / "inst")
    script = inst / "restore_inc.py"
    set_variables(script, db_host="10.0.0.7", db_port=27018, last_circle_backup_dir_name="mongodb_cycle_backup_titan_1",
                  restore_local_temp_path="/data/restore/")
    edited = script.read_text()
    r = run_cli("install-scripts", str(inst))
    expect_ok(r)
    assert "kept your settings in restore_inc.py: db_host, db_port, last_circle_backup_dir_name, restore_local_temp_path" \
        in r.stdout
    text = script.read_text()
    for line in ["db_host = '10.0.0.7'", "db_port = 27018", "restore_local_temp_path = '/data/restore/'"]:
        assert "\n%s\n" % line in text, line
    assert text == edited  # only settings were edited: carried, nothing else to keep
    # An edit outside the settings is kept as a dated copy.
    script.write_text(edited.replace("def main():", "# my note\ndef main():"))
    r = run_cli("install-scripts", str(inst))
    [kept] = [p for p in inst.iterdir() if p.name.startswith("restore_inc.py.bak.")]
    assert "# my note" in kept.read_text() and script.read_text() == edited
    # Another run changes nothing and keeps no further copy.
    r = run_cli("install-scripts", str(inst))
    assert script.read_text() == edited
    assert len([p for p in inst.iterdir() if p.name.startswith("restore_inc.py.bak.")]) == 1
    ast.parse(text)
    # The first install over the old scripts keeps them as .orig (the rollback) and their settings.
    old = tmp_path / "old"
    old.mkdir()
    (old / "restore_inc.py").write_text('# old\nendpoint = "oss-cn-beijing.aliyuncs.com"\ndb_name = "chen"\n')
    r = run_cli("install-scripts", str(old))
    assert (old / "restore_inc.py.orig").read_text().startswith("# old")
    assert '\nendpoint = "oss-cn-beijing.aliyuncs.com"\n' in (old / "restore_inc.py").read_text()
