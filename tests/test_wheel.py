"""The portable wheel (`./build-wheel`) installs on a host without Rust or a compiler: into a fresh venv,
from the file alone (no index, no network, not from the build tree), then check-config and a real backup
run from that venv. CI builds the wheel before the tests; without one this test skips, saying so."""

import glob
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import expect_ok, write_config
from datagen import populate

ROOT = Path(__file__).resolve().parent.parent


def built_wheel():
    wheels = sorted(glob.glob(str(ROOT / "dist" / "mongo_oss_backup-*-abi3-manylinux*.whl")),
                    key=os.path.getmtime)
    return Path(wheels[-1]) if wheels else None


def oldest_python():
    """The oldest Python >= 3.9 on this host (the wheel promises 3.9), else the one running."""
    candidates = [shutil.which("python3.9"),
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")))]
    for path in filter(None, candidates):
        if subprocess.run([path, "-c", "import venv, ensurepip"], capture_output=True).returncode == 0:
            return path
    return sys.executable


def max_glibc(library: bytes) -> tuple:
    """The newest GLIBC_x.y symbol version a shared library needs."""
    versions = {tuple(int(p) for p in m.split(b".")) for m in re.findall(rb"GLIBC_(\d+\.\d+(?:\.\d+)?)", library)}
    return max(versions)


@pytest.mark.timeout(900)
def test_portable_wheel_installs_offline_and_backs_up(tmp_path, mongo):
    wheel = built_wheel()
    if wheel is None:
        pytest.skip("no portable wheel in dist/: run ./build-wheel first (CI does)")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        [core] = [n for n in names if n.endswith("_core.abi3.so")]
        needed = max_glibc(z.read(core))
    assert needed <= (2, 17), "the wheel needs glibc %s, newer than manylinux2014's 2.17" % (needed,)
    assert not any(n.endswith((".rs", "Cargo.toml")) for n in names)

    python = oldest_python()
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)
    # Only the file: no index, no network, run away from the source tree.
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")
    env.pop("PYTHONPATH", None)
    expect_ok(subprocess.run([str(venv / "bin" / "pip"), "install", "--no-index", "--no-deps", str(wheel)],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300))
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import mongo_oss_backup, sys; print(mongo_oss_backup.__file__); print(sys.version_info[:2])"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    expect_ok(where)
    assert where.stdout.startswith(str(venv)), where.stdout

    db = "wheel_db"
    client = mongo.client()
    client.drop_database(db)
    populate(client[db], n=100)
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db, is_inc_backup="1",
                       full_backup_period="7", storage_url="file://%s" % (tmp_path / "bucket"),
                       db_backup_root_path=str(tmp_path / "root"))
    exe = str(venv / "bin" / "mongo-oss-backup")
    expect_ok(subprocess.run([exe, "check-config", "--config", str(cfg)], capture_output=True, text=True,
                             env=env, cwd=tmp_path, timeout=120))
    r = expect_ok(subprocess.run([exe, "backup", "--config", str(cfg)], capture_output=True, text=True,
                                 env=env, cwd=tmp_path, timeout=600))
    assert "stored as" in r.stdout
    [archive] = (tmp_path / "bucket").rglob("full_backup.tar.gz")
    assert archive.stat().st_size > 0
    expect_ok(subprocess.run([exe, "verify", "--config", str(cfg), "--deep"], capture_output=True,
                             text=True, env=env, cwd=tmp_path, timeout=600))
