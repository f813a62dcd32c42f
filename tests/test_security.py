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

from conftest import (BACKUP_PW, BACKUP_USER, OSS_SK, ROOT_PW, ROOT_USER, oss_config, run_cli)
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
