"""Faults during real runs (OSS test server's fault injection, secantusdb stopped and killed, a full
disk). Each run either completes or ends with one clear error line and a non-zero exit; the next run
after the fault is removed completes; and a restore of the cycle afterwards equals the source, so no
write was lost. kill -9 at every step is in test_incremental_faults.py."""

import json
import os
import resource
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import OSS_AK, OSS_SK, expect_ok, oss_config, run_cli, start_secantus, write_config
from datagen import assert_same_database
from scripts_util import error_lines


def backup(cfg, proxy=None, **kw):
    env = {"HTTP_PROXY": proxy} if proxy else None
    return run_cli("backup", "--config", str(cfg), env=env, **kw)


def ok(r):
    expect_ok(r)
    return r


def one_error_line(r, *words):
    """Non-zero exit and exactly one error line, naming the cause."""
    assert r.returncode != 0, r.stdout + r.stderr
    lines = error_lines(r.stderr)
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def restore_equals_source(cfg, client, db, tmp_path, proxy=None):
    """Restores the installation's current cycle into a fresh database and compares it with `db`."""
    root = Path(json.loads(run_cli("check-config", "--config", str(cfg)).stdout)["db_backup_root_path"])
    cycle = json.loads((root / "mongodb_inc_backup_info.json").read_text())["last_circle_backup_dir_name"]
    target = db + "_restored"
    client.drop_database(target)
    env = {"HTTP_PROXY": proxy} if proxy else None
    r = run_cli("restore", "--config", str(cfg), "--cycle", cycle, "--target-db", target,
                "--local-dir", str(tmp_path / ("rs-%d" % time.monotonic_ns())), env=env)
    ok(r)
    assert_same_database(client[db], client[target])


def oss_installation(tmp_path, oss_server, mongo, db, bucket, **extra):
    values = dict(db_port=str(mongo.port), db_name=db, is_inc_backup="1", full_backup_period="7",
                  db_backup_root_path=str(tmp_path / "root"), storage_timeout_seconds="1")
    values.update(extra)
    return oss_config(tmp_path / "inst", oss_server, bucket, **values)


def insert(client, db, tag, n=50):
    client[db].c.insert_many([{"_id": "%s-%d" % (tag, i), "v": "x" * (i % 40)} for i in range(n)])


@pytest.mark.parametrize("mode", ["503", "drop", "stall"])
def test_oss_faults_are_retried(tmp_path, mongo, oss_server, mode):
    db = "fault_" + mode
    client = mongo.client()
    client.drop_database(db)
    insert(client, db, "a")
    bucket = oss_server.add_bucket("fault-" + mode)
    cfg = oss_installation(tmp_path, oss_server, mongo, db, bucket)
    try:
        # Each stored archive and manifest meets faults on its first tries (a stall outlasts the
        # 1-second storage timeout); the retries get through.
        oss_server.fault(mode, count=3, methods=["PUT"], seconds=3)
        ok(backup(cfg, oss_server.proxy))
        insert(client, db, "b")
        time.sleep(1.1)
        oss_server.fault(mode, count=2, methods=["PUT", "HEAD"], seconds=3)
        ok(backup(cfg, oss_server.proxy))
    finally:
        oss_server.admin("faults", {"clear": True})
    restore_equals_source(cfg, client, db, tmp_path, oss_server.proxy)


def test_storage_stalled_for_good_then_back(tmp_path, mongo, oss_server):
    db = "fault_stalled"
    client = mongo.client()
    client.drop_database(db)
    insert(client, db, "a")
    bucket = oss_server.add_bucket("fault-stalled")
    cfg = oss_installation(tmp_path, oss_server, mongo, db, bucket)
    ok(backup(cfg, oss_server.proxy))
    insert(client, db, "b")
    time.sleep(1.1)
    try:
        oss_server.fault("stall", count=100, methods=["PUT"], seconds=2)
        r = backup(cfg, oss_server.proxy)
        one_error_line(r, "timed out")
    finally:
        oss_server.admin("faults", {"clear": True})
    insert(client, db, "c")
    time.sleep(1.1)
    r = ok(backup(cfg, oss_server.proxy))
    assert "left unstored by an earlier run" in r.stdout
    restore_equals_source(cfg, client, db, tmp_path, oss_server.proxy)


def test_credentials_revoked_mid_run(tmp_path, mongo, oss_server):
    db = "fault_revoked"
    client = mongo.client()
    client.drop_database(db)
    insert(client, db, "a", n=200)
    bucket = oss_server.add_bucket("fault-revoked")
    cfg = oss_installation(tmp_path, oss_server, mongo, db, bucket)
    before = oss_server.stats()["faults_served"]

    def revoke_when_the_upload_starts():
        deadline = time.time() + 30
        while time.time() < deadline and oss_server.stats()["faults_served"] == before:
            time.sleep(0.05)
        oss_server.admin("credentials", {"access_key_secret": "rotated-secret"})

    try:
        # The first upload stalls past the timeout; by its retry the secret has been rotated.
        oss_server.fault("stall", count=1, methods=["PUT"], seconds=2)
        t = threading.Thread(target=revoke_when_the_upload_starts)
        t.start()
        r = backup(cfg, oss_server.proxy)
        t.join()
        one_error_line(r, "credentials")
        assert OSS_SK not in r.stdout + r.stderr
    finally:
        oss_server.admin("faults", {"clear": True})
        oss_server.admin("credentials", {"access_key_id": OSS_AK, "access_key_secret": OSS_SK})
    insert(client, db, "b")
    time.sleep(1.1)
    r = ok(backup(cfg, oss_server.proxy))
    assert "left unstored by an earlier run" in r.stdout
    restore_equals_source(cfg, client, db, tmp_path, oss_server.proxy)


def test_mongodb_down_at_start_then_back(tmp_path):
    work = tmp_path / "secantus"
    server = start_secantus(work, storage=work / "data")
    db = "fault_down"
    try:
        insert(server.client(), db, "a")
        cfg = write_config(tmp_path / "inst", db_port=str(server.port), db_name=db, is_inc_backup="1",
                           full_backup_period="7", storage_url="file://%s" % (tmp_path / "bucket"),
                           db_backup_root_path=str(tmp_path / "root"))
        server.stop()
        r = backup(cfg)
        one_error_line(r, "cannot reach MongoDB at 127.0.0.1:%d" % server.port)
        assert not (tmp_path / "bucket").exists() or not any((tmp_path / "bucket").rglob("*.tar.gz"))
        server = start_secantus(work, storage=work / "data")
        cfg = write_config(tmp_path / "inst", db_port=str(server.port), db_name=db, is_inc_backup="1",
                           full_backup_period="7", storage_url="file://%s" % (tmp_path / "bucket"),
                           db_backup_root_path=str(tmp_path / "root"))
        ok(backup(cfg))
        insert(server.client(), db, "b")
        time.sleep(1.1)
        ok(backup(cfg))
        restore_equals_source(cfg, server.client(), db, tmp_path)
    finally:
        server.stop()


def test_mongodb_killed_mid_dump(tmp_path):
    work = tmp_path / "secantus"
    server = start_secantus(work, storage=work / "data")
    db = "fault_killed"
    try:
        client = server.client()
        for k in range(4):
            client[db].big.insert_many([{"_id": k * 10000 + i, "pad": "p" * 200} for i in range(10000)])
        client.close()
        root = tmp_path / "root"
        values = dict(db_name=db, is_inc_backup="1", full_backup_period="7",
                      storage_url="file://%s" % (tmp_path / "bucket"), db_backup_root_path=str(root))
        cfg = write_config(tmp_path / "inst", db_port=str(server.port), **values)
        proc = subprocess.Popen([shutil.which("mongo-oss-backup"), "backup", "--config", str(cfg)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline and not any(p.stat().st_size > 0 for p in root.rglob("big.bson*")):  # spooled
            time.sleep(0.02)
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.proc.wait()
        out, err = proc.communicate(timeout=120)
        r = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        one_error_line(r, "MongoDB")
        assert not list((tmp_path / "bucket").rglob("*.tar.gz"))  # (rglob of a missing folder is empty)
        assert not (root / "mongodb_inc_backup_info.json").exists()
        server = start_secantus(work, storage=work / "data")
        cfg = write_config(tmp_path / "inst", db_port=str(server.port), **values)
        ok(backup(cfg))
        restore_equals_source(cfg, server.client(), db, tmp_path)
    finally:
        server.stop()


class SmallDisk:
    """A 1 MiB file system for the backup root: a tmpfs when we may mount one, otherwise a file-size
    limit (RLIMIT_FSIZE) on the run, which fails writes the same way a full disk does."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True)
        # MOB_TEST_NO_MOUNT=1 tries the file-size limit where a mount would work.
        mount = ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(path)]
        self.mounted = ("MOB_TEST_NO_MOUNT" not in os.environ and shutil.which("mount") is not None
                        and subprocess.run(mount, capture_output=True).returncode == 0)

    def limit(self):
        if not self.mounted:
            resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def grow(self):
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,size=256m", str(self.path)], check=True)

    def remove(self):
        if self.mounted:
            subprocess.run(["umount", str(self.path)], check=False)


def test_disk_full_then_space_again(tmp_path, mongo):
    db = "fault_disk"
    client = mongo.client()
    client.drop_database(db)
    client[db].c.insert_many([{"_id": i, "pad": os.urandom(400).hex()} for i in range(3000)])
    disk = SmallDisk(tmp_path / "root")
    try:
        cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db, is_inc_backup="1",
                           full_backup_period="7", storage_url="file://%s" % (tmp_path / "bucket"),
                           db_backup_root_path=str(disk.path))
        r = subprocess.run([shutil.which("mongo-oss-backup"), "backup", "--config", str(cfg)], capture_output=True, text=True,
                           preexec_fn=disk.limit, timeout=300)
        one_error_line(r, "cannot write", "no space left on device" if disk.mounted else "too large")
        assert not (disk.path / "mongodb_inc_backup_info.json").exists()
        disk.grow()  # (a file-size limit applied to that run only)
        ok(backup(cfg))
        client[db].c.insert_many([{"_id": "late-%d" % i} for i in range(10)])
        time.sleep(1.1)
        ok(backup(cfg))
        restore_equals_source(cfg, client, db, tmp_path)
    finally:
        disk.remove()
