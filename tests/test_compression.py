"""Archives compressed on every core (gzip, pigz's scheme) stay standard gzip that GNU tar and Python's
tarfile read; zstd is opt-in (`.tar.zst`), recognised by its magic bytes, and a cycle that switched
codec half-way restores byte for byte."""

import json
import os
import shutil
import subprocess
import tarfile
import time

import pytest

import mongo_oss_backup as mob
from conftest import expect_ok, run_cli, write_config
from datagen import assert_same_database, populate


def tree(root):
    (root / "app").mkdir(parents=True)
    # Compressible, several MiB: several blocks of the parallel compressor.
    (root / "app" / "c.bson").write_bytes(b"".join(b"{\"user\": %d, \"name\": \"name-%d\"}" % (i, i % 97)
                                                   for i in range(300_000)))
    (root / "app" / "r.bson").write_bytes(os.urandom(3 << 20))
    (root / "app" / "c.metadata.json").write_text('{"indexes":[]}')
    return {p.relative_to(root.parent).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_parallel_gzip_is_plain_gzip(tmp_path):
    src = tmp_path / "full_backup"
    files = tree(src)
    single, parallel = tmp_path / "single.tar.gz", tmp_path / "parallel.tar.gz"
    mob.create_archive(str(src), str(single), level=6, threads=1)
    stats = mob.create_archive(str(src), str(parallel), level=6, threads=2)
    # Within 2% of single-threaded gzip at the same level.
    assert stats["archive_bytes"] < single.stat().st_size * 1.02
    out = tmp_path / "gnu"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(parallel), "-C", str(out)], check=True)
    subprocess.run(["gzip", "-t", str(parallel)], check=True)
    with tarfile.open(parallel, "r:gz") as t:  # what the old restore scripts use
        for name, data in files.items():
            assert t.extractfile(name).read() == data, name
    for name, data in files.items():
        assert (out / name).read_bytes() == data


@pytest.mark.skipif(shutil.which("zstd") is None, reason="the zstd command is not installed")
def test_zstd_archive_is_plain_zstd_and_recognised(tmp_path):
    src = tmp_path / "oplog_20260101000000"
    files = tree(src)
    archive = tmp_path / "x.tar.zst"
    mob.create_archive(str(src), str(archive), level=3, compression="zstd", threads=2)
    assert archive.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    out = tmp_path / "gnu"
    out.mkdir()
    subprocess.run(["tar", "-I", "zstd", "-xf", str(archive), "-C", str(out)], check=True)
    renamed = tmp_path / "misnamed.tar.gz"  # the name does not matter: the magic bytes do
    shutil.copy(archive, renamed)
    ours = tmp_path / "ours"
    assert mob.extract_archive(str(renamed), str(ours)) == [src.name]
    for name, data in files.items():
        assert (out / name).read_bytes() == data and (ours / name).read_bytes() == data


def test_a_cycle_that_switches_to_zstd_restores(tmp_path, mongo):
    db = "codec_mixed"
    client = mongo.client()
    client.drop_database(db)
    populate(client[db], n=200)
    values = dict(db_port=str(mongo.port), db_name=db, is_inc_backup="1", full_backup_period="7",
                  storage_url="file://%s" % (tmp_path / "bucket"), db_backup_root_path=str(tmp_path / "root"))
    cfg = write_config(tmp_path / "inst", **values)
    cycle = json.loads(expect_ok(run_cli("backup", "--config", str(cfg), "--json")).stdout)["cycle"]
    client[db].people.update_many({"i32": {"$gt": 0}}, {"$set": {"gz": True}})
    time.sleep(1.1)
    expect_ok(run_cli("backup", "--config", str(cfg)))
    cfg = write_config(tmp_path / "inst", compression="zstd", **values)  # switched mid-cycle
    client[db].more.insert_many([{"_id": i, "z": "x" * i} for i in range(100)])
    time.sleep(1.1)
    expect_ok(run_cli("backup", "--config", str(cfg)))
    names = sorted(p.name for p in (tmp_path / "bucket" / cycle / "inc_backup").iterdir())
    assert [n.split(".", 1)[1] for n in names] == ["tar.gz", "tar.zst"], names
    manifest = json.loads((tmp_path / "bucket" / cycle / "manifest.json").read_text())
    assert [a.get("codec") for a in manifest["archives"]] == ["gzip", "gzip", "zstd"]

    listing = json.loads(expect_ok(run_cli("list", "--config", str(cfg), "--json")).stdout)
    assert listing["cycles"][0]["complete"] and len(listing["cycles"][0]["increments"]) == 2
    expect_ok(run_cli("verify", "--config", str(cfg)))
    target = db + "_restored"
    client.drop_database(target)
    expect_ok(run_cli("restore", "--config", str(cfg), "--cycle", cycle, "--target-db", target,
                      "--local-dir", str(tmp_path / "rs")))
    assert_same_database(client[db], client[target])


def test_full_mode_zstd_backup_restores(tmp_path, mongo):
    db = "codec_full"
    client = mongo.client()
    client.drop_database(db)
    populate(client[db], n=100)
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db, compression="zstd",
                       zstd_level="5", storage_url="file://%s" % (tmp_path / "bucket"),
                       db_backup_root_path=str(tmp_path / "root"))
    out = json.loads(expect_ok(run_cli("backup", "--config", str(cfg), "--json")).stdout)
    assert out["key"].endswith(".tar.zst") and (tmp_path / "bucket" / out["key"]).exists()
    target = db + "_restored"
    client.drop_database(target)
    expect_ok(run_cli("restore", "--config", str(cfg), "--full", out["name"], "--target-db", target,
                      "--local-dir", str(tmp_path / "rs")))
    assert_same_database(client[db], client[target])
