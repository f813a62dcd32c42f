"""A run of start.py killed at every step (a crash hook that aborts on the spot, as kill -9 does, and a
real SIGKILL during a stalled upload): the next runs complete, and no write is missing from what the
bucket holds — each inserted document is in the cycle's full dump or in exactly one increment."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import expect_ok, oss_config, run_cli, write_config
from inc_util import check_nothing_missing, folder_cycle_files
from scripts_util import install_scripts, run_script


def writer(collection):
    """insert(n) writes n new documents into `collection`; `inserted` lists every _id written."""
    inserted = []

    def insert(n):
        ids = ["%s-%d" % (time.time(), i) for i in range(n)]
        collection.insert_many([{"_id": i} for i in ids])
        inserted.extend(ids)

    return insert, inserted


@pytest.mark.parametrize("point", ["during_dump", "after_dump", "after_archive", "after_upload", "before_state_a",
                                   "after_capture", "inc:after_archive", "inc:after_upload",
                                   "manifest_staged", "inc:after_manifest", "inc:manifest_staged"])
def test_crash_at_every_step(tmp_path, mongo, point):
    db = "crash_" + point.replace(":", "_")
    client = mongo.client()
    client.drop_database(db)
    insert, inserted = writer(client[db].c)

    insert(5)
    inst = tmp_path / "inst"
    write_config(inst, db_port=str(mongo.port), db_name=db, is_inc_backup="1", full_backup_period="7",
                 storage_url="file://%s" % (tmp_path / "bucket"), db_backup_root_path=str(tmp_path / "root"))
    install_scripts(inst)
    stage = point.split(":")[-1]
    if point.startswith("inc:") or point == "after_capture":
        expect_ok(run_script(inst / "start.py"))
        insert(5)
        time.sleep(1.1)
    r = run_script(inst / "start.py", env={"MONGO_OSS_BACKUP_TEST_CRASH": stage})
    assert r.returncode == -signal.SIGABRT, r.stdout + r.stderr
    assert "test crash at " + stage in r.stderr
    for _ in range(2):
        insert(5)
        time.sleep(1.1)
        r = run_script(inst / "start.py")
        expect_ok(r)
    cycle = json.loads((tmp_path / "root" / "mongodb_inc_backup_info.json").read_text())["last_circle_backup_dir_name"]
    check_nothing_missing(folder_cycle_files(tmp_path / "bucket", cycle), db, inserted)
    # The manifest names exactly what the bucket holds, with the right sizes and CRC64s.
    r = run_cli("verify", "--config", str(inst / "config.properties"), cycle)
    expect_ok(r)
    assert "note " not in r.stdout, r.stdout + r.stderr


def test_sigkill_during_a_stalled_upload(tmp_path, mongo, oss_server):
    import alibabacloud_oss_v2 as oss
    db = "killed_upload"
    client = mongo.client()
    client.drop_database(db)
    inserted = ["a%d" % i for i in range(10)]
    client[db].c.insert_many([{"_id": i} for i in inserted])
    bucket = oss_server.add_bucket("inc-killed")
    inst = tmp_path / "inst"
    oss_config(inst, oss_server, bucket, db_port=str(mongo.port), db_name=db, is_inc_backup="1",
               full_backup_period="7", db_backup_root_path=str(tmp_path / "root"))
    install_scripts(inst)
    env = dict(os.environ, HTTP_PROXY=oss_server.proxy)
    oss_server.fault("stall", count=1, methods=["PUT"], seconds=20)
    proc = subprocess.Popen([sys.executable, str(inst / "start.py")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 30
    while time.time() < deadline and oss_server.stats()["faults_served"] == 0:
        time.sleep(0.1)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    oss_server.admin("faults", {"clear": True})
    more = ["b%d" % i for i in range(10)]
    client[db].c.insert_many([{"_id": i} for i in more])
    time.sleep(1.1)
    for _ in range(2):
        r = run_script(inst / "start.py", env={"HTTP_PROXY": oss_server.proxy})
        expect_ok(r)
        time.sleep(1.1)
    cycle = json.loads((tmp_path / "root" / "mongodb_inc_backup_info.json").read_text())["last_circle_backup_dir_name"]
    sdk = oss_server.sdk_client()
    keys = [o.key for o in sdk.list_objects_v2(oss.ListObjectsV2Request(bucket=bucket, prefix=cycle + "/")).contents]
    files = {k: sdk.get_object(oss.GetObjectRequest(bucket=bucket, key=k)).body.read() for k in keys}
    check_nothing_missing(files, db, inserted + more)


def test_killed_before_naming_its_new_cycle(tmp_path, mongo):
    """A cycle expired; the run that starts the next one stores its dump and is killed before state
    A names it. The next run continues that cycle with an increment instead of dumping the database
    a second time: the bucket holds the old cycle and one new one, with nothing missing."""
    db = "crash_adopt"
    client = mongo.client()
    client.drop_database(db)
    insert, inserted = writer(client[db].c)

    bucket = tmp_path / "bucket"
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db, is_inc_backup="1",
                       full_backup_period="1", storage_url="file://%s" % bucket,
                       db_backup_root_path=str(tmp_path / "root"))

    def backup(day, crash=None):
        env = {"MONGO_OSS_BACKUP_TEST_CLOCK": day}
        if crash:
            env["MONGO_OSS_BACKUP_TEST_CRASH"] = crash
        return run_cli("backup", "--config", str(cfg), env=env)

    insert(5)
    expect_ok(backup("2026-03-01 10:00:00"))
    insert(5)
    r = backup("2026-03-03 10:00:00", crash="before_state_a")
    assert r.returncode == -signal.SIGABRT, r.stdout + r.stderr
    insert(5)
    r = expect_ok(backup("2026-03-03 11:00:00"))
    assert "it is the current cycle" in r.stderr, r.stderr
    cycles = sorted(p.name for p in bucket.iterdir() if p.name != ".partial")
    assert len(cycles) == 2, cycles
    state = json.loads((tmp_path / "root" / "mongodb_inc_backup_info.json").read_text())
    assert state["last_circle_backup_dir_name"] == cycles[1]
    files = folder_cycle_files(bucket, cycles[1])
    assert len([k for k in files if "/inc_backup/" in k]) == 1, list(files)
    check_nothing_missing(files, db, inserted)
    expect_ok(run_cli("verify", "--config", str(cfg), cycles[1]))
