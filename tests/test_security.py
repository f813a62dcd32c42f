"""Secrets stay secret and backups stay private: a whole run (backups, list, status, verify --deep,
prune, check-config, restore, with --json and without) against an OSS bucket and an authenticated
server shows no password or access key secret in any output, argv, local file or object in the bucket
(archives unpacked); every local file it leaves is 0600 and every directory 0700."""

import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import time

import psutil

from conftest import (BACKUP_PW, BACKUP_USER, OSS_SK, RESTORE_PW, RESTORE_USER, ROOT_PW, ROOT_USER, oss_config,
                      run_cli, run_ok, write_config)
from scripts_util import install_scripts


def unpacked(data: bytes):
    """The object itself, and every file inside it when it is a tar.gz."""
    yield data
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar.getmembers():
                if m.isfile():
                    yield tar.extractfile(m).read()
    except tarfile.TarError:
        pass


def test_no_secret_anywhere_and_private_modes(tmp_path, mongo_auth, oss_server):
    secrets = [OSS_SK, BACKUP_PW, ROOT_PW]
    db = "app"
    root_client = mongo_auth.client()
    root_client.drop_database(db)
    root_client[db].c.insert_many([{"_id": i, "v": "value %d" % i} for i in range(100)])
    bucket = oss_server.add_bucket("secrets")
    env = {"HTTP_PROXY": oss_server.proxy}
    common = dict(db_port=str(mongo_auth.port), db_name=db, is_inc_backup="1", full_backup_period="7",
                  db_backup_root_path=str(tmp_path / "root"))
    backup_cfg = oss_config(tmp_path / "inst", oss_server, bucket, db_user=BACKUP_USER, db_passwd=BACKUP_PW,
                            **common)
    admin_cfg = oss_config(tmp_path / "admin", oss_server, bucket, db_user=ROOT_USER, db_passwd=ROOT_PW, **common)
    install_scripts(tmp_path / "inst")
    outputs = []

    def cli(*args, cfg=backup_cfg, codes=(0,)):
        r = run_cli(*args, "--config", str(cfg), env=env)
        outputs.append(r.stdout + r.stderr)
        assert r.returncode in codes, r.stdout + r.stderr
        return r

    # start.py as cron runs it; its process tree's argv is sampled while an upload stalls.
    oss_server.fault("stall", count=1, methods=["PUT"], seconds=2)
    proc = subprocess.Popen([sys.executable, str(tmp_path / "inst" / "start.py")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ, **env))
    argvs = []
    while proc.poll() is None:
        try:
            tree = [psutil.Process(proc.pid)] + psutil.Process(proc.pid).children(recursive=True)
            argvs.extend(" ".join(p.cmdline()) for p in tree)
        except psutil.Error:
            pass
        time.sleep(0.05)
    outputs.append(proc.stdout.read())
    oss_server.admin("faults", {"clear": True})
    assert proc.returncode == 0, outputs[-1]
    assert argvs and any("start.py" in a for a in argvs)
    root_client[db].c.insert_many([{"_id": "more-%d" % i} for i in range(10)])
    time.sleep(1.1)
    for json_flag in ([], ["--json"]):
        cli("backup", *json_flag)
        cli("list", *json_flag)
        cli("status", *json_flag)
        cli("check-config", *json_flag)
        cli("prune", "--keep", "5", "--dry-run", *json_flag)
        time.sleep(1.1)
    cli("verify", "--deep", "--json", cfg=admin_cfg)
    cycle = json.loads(cli("list", "--json").stdout)["cycles"][0]["name"]
    root_client.drop_database("restored")
    cli("restore", "--cycle", cycle, "--target-db", "restored", "--local-dir", str(tmp_path / "rs"), cfg=admin_cfg)
    cli("restore", "--cycle", cycle, "--dry-run", "--local-dir", str(tmp_path / "rs2"), "--json", cfg=admin_cfg)
    # A wrong password is named as such, without the password.
    wrong = oss_config(tmp_path / "wrong", oss_server, bucket, db_user=BACKUP_USER, db_passwd=BACKUP_PW + "x",
                       **dict(common, db_backup_root_path=str(tmp_path / "wrongroot")))
    r = cli("backup", cfg=wrong, codes=(1,))
    assert "authentication failed" in r.stderr

    for text in outputs + argvs:
        for s in secrets:
            assert s not in text, "a secret in the output or argv"
    files = [p for p in (tmp_path / "root").rglob("*") if p.is_file()]
    files += [p for p in (tmp_path / "rs").rglob("*") if p.is_file()]
    assert files
    for p in files:
        content = p.read_bytes()
        for s in secrets:
            assert s.encode() not in content, p
    objects = [p for p in (oss_server.root / bucket / "objects").iterdir()]
    assert any("manifest.json" in p.name for p in objects)
    for p in objects:
        for blob in unpacked(p.read_bytes()):
            for s in secrets:
                assert s.encode() not in blob, p

    for top in (tmp_path / "root", tmp_path / "rs"):
        for p in [top, *top.rglob("*")]:
            mode = stat.S_IMODE(p.stat().st_mode)
            assert mode & 0o077 == 0, "%s is %o" % (p, mode)
            if p.is_dir():
                assert mode == 0o700, "%s is %o" % (p, mode)


def test_restore_writes_as_its_own_user(tmp_path, mongo_auth):
    """The backup user may not write: the restore says how to give it a user that may, then writes as
    `--db-user` (password from MONGO_OSS_RESTORE_PASSWD, never argv) or as restore_db_user."""
    db = "app"
    root_client = mongo_auth.client()
    root_client.drop_database(db)
    root_client[db].c.insert_many([{"_id": i, "v": "value %d" % i} for i in range(50)])
    common = dict(db_port=str(mongo_auth.port), db_name=db, is_inc_backup="1", full_backup_period="7",
                  db_user=BACKUP_USER, db_passwd=BACKUP_PW, storage_url="file://%s" % (tmp_path / "bucket"),
                  db_backup_root_path=str(tmp_path / "root"))
    cfg = write_config(tmp_path / "inst", **common)
    run_ok("backup", "--config", str(cfg))
    root_client[db].c.insert_one({"_id": "later"})
    time.sleep(1.1)
    cycle = json.loads(run_ok("backup", "--config", str(cfg), "--json").stdout)["cycle"]
    restore = ["restore", "--config", str(cfg), "--cycle", cycle, "--target-db", "restored", "--drop",
               "--local-dir", str(tmp_path / "rs")]

    root_client.drop_database("restored")
    r = run_cli(*restore)
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'user "%s" is not allowed to' % BACKUP_USER in r.stderr and "--db-user" in r.stderr \
        and "MONGO_OSS_RESTORE_PASSWD" in r.stderr and "restore_db_user" in r.stderr, r.stderr

    # --db-user without its password in the environment: refused before anything is read.
    r = run_cli(*restore, "--db-user", RESTORE_USER, env={"MONGO_OSS_RESTORE_PASSWD": ""})
    assert r.returncode == 2 and "MONGO_OSS_RESTORE_PASSWD" in r.stderr, r.stdout + r.stderr

    def restored_equals_source():
        source = list(root_client[db].c.find().sort("_id", 1))
        assert source and list(root_client.restored.c.find().sort("_id", 1)) == source

    # With the restore user; its password is in no process's argv.
    proc = subprocess.Popen(["mongo-oss-backup", *restore, "--db-user", RESTORE_USER], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, MONGO_OSS_RESTORE_PASSWD=RESTORE_PW))
    argvs = []
    while proc.poll() is None:
        try:
            argvs.append(" ".join(psutil.Process(proc.pid).cmdline()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    out = proc.stdout.read()
    assert proc.returncode == 0, out
    assert argvs and not any(RESTORE_PW in a for a in argvs) and RESTORE_PW not in out
    restored_equals_source()

    # The same user from the config's keys; a wrong password names those keys.
    root_client.drop_database("restored")
    keyed = write_config(tmp_path / "keyed", restore_db_user=RESTORE_USER, restore_db_passwd=RESTORE_PW, **common)
    run_ok(*[keyed if a == str(cfg) else a for a in map(str, restore)])
    restored_equals_source()
    wrong = write_config(tmp_path / "wrong", restore_db_user=RESTORE_USER, restore_db_passwd="nope", **common)
    r = run_cli(*[str(wrong) if a == str(cfg) else a for a in restore])
    assert r.returncode == 1 and "restore_db_user and restore_db_passwd" in r.stderr, r.stdout + r.stderr

    # The Python API takes the user and password as arguments.
    root_client.drop_database("restored")
    import mongo_oss_backup as mob
    result = mob.restore(config=cfg, cycle=cycle, target_db="restored", drop=True, local_dir=tmp_path / "rs3",
                         db_user=RESTORE_USER, db_password=RESTORE_PW)
    assert result.reached is not None
    restored_equals_source()
