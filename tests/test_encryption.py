"""Client-side encryption (encrypt_recipients, age): the bucket and the backed-up host's disk hold no
plaintext, every command that needs plaintext refuses in one line without the identity (or with
another one), `verify` and `list` work without it, and a cycle restores byte for byte with it."""

import json
import os
import time

import pytest

import mongo_oss_backup as mob
from conftest import expect_ok, run_cli, write_config
from datagen import assert_same_database, populate
from scripts_util import one_error

MARKER = b"plaintext-marker-7f3a"
COLLECTION = b"confidential_customers"


def keygen(path):
    r = expect_ok(run_cli("keygen", str(path)))
    public = r.stdout.strip()
    assert public.startswith("age1"), r.stdout
    assert os.stat(path).st_mode & 0o077 == 0
    return public


def files_under(root):
    for dirpath, _, names in os.walk(root):
        for n in names:
            yield os.path.join(dirpath, n)


def assert_no_plaintext(root):
    for path in files_under(root):
        with open(path, "rb") as f:
            data = f.read()
        assert MARKER not in data and COLLECTION not in data, path


def source_database(mongo, db, n):
    """A fresh database `db` with `n` people (and the client)."""
    client = mongo.client()
    client.drop_database(db)
    populate(client[db], n=n)
    return client


def test_encrypted_cycle_restores_only_with_the_identity(tmp_path, mongo):
    db = "sealed_cycle"
    client = source_database(mongo, db, 150)
    client[db][COLLECTION.decode()].insert_many([{"_id": i, "note": MARKER.decode()} for i in range(50)])
    key, other = tmp_path / "keys" / "restore.key", tmp_path / "keys" / "other.key"
    key.parent.mkdir()
    public = keygen(key)
    keygen(other)
    assert expect_ok(run_cli("keygen", str(key)), 2).returncode == 2  # never overwritten

    bucket, root = tmp_path / "bucket", tmp_path / "root"
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db, is_inc_backup="1",
                       full_backup_period="7", storage_url="file://%s" % bucket,
                       db_backup_root_path=str(root), encrypt_recipients=public)
    # The backed-up host has no identity at all.
    env = {"MONGO_OSS_AGE_IDENTITY": ""}
    cycle = json.loads(expect_ok(run_cli("backup", "--config", str(cfg), "--json", env=env)).stdout)["cycle"]
    for round_ in range(2):
        client[db][COLLECTION.decode()].insert_many(
            [{"_id": 1000 * (round_ + 1) + i, "note": MARKER.decode()} for i in range(20)])
        client[db].people.update_many({}, {"$inc": {"round": 1}})
        time.sleep(1.1)
        expect_ok(run_cli("backup", "--config", str(cfg), env=env))

    keys = sorted(os.path.relpath(p, bucket) for p in files_under(bucket))
    archives = [k for k in keys if not k.endswith(".json")]
    assert len(archives) == 3 and all(k.endswith(".tar.gz.age") for k in archives), keys
    assert_no_plaintext(bucket)
    assert_no_plaintext(root)

    # No identity needed: the stored bytes against the manifest, the chain, the listing.
    expect_ok(run_cli("verify", "--config", str(cfg), env=env))
    listing = json.loads(expect_ok(run_cli("list", "--config", str(cfg), "--json", env=env)).stdout)
    full = listing["cycles"][0]["full"]
    assert full["encrypted"] and full["documents"] is None
    assert "restores need the identity" in expect_ok(run_cli("list", "--config", str(cfg), env=env)).stdout

    target = db + "_restored"
    client.drop_database(target)
    restore = ["restore", "--config", str(cfg), "--cycle", cycle, "--target-db", target,
               "--local-dir", str(tmp_path / "rs")]
    one_error(run_cli(*restore, env=env), "encrypted", "--identity")
    one_error(run_cli(*restore, "--identity", str(other), env=env), "encrypted for other keys")
    one_error(run_cli("verify", "--config", str(cfg), "--deep", env=env), "--identity")
    assert target not in client.list_database_names()

    expect_ok(run_cli(*restore, "--identity", str(key), env=env))
    assert_same_database(client[db], client[target])
    # The identity may also come from the environment (how restore_inc.py gets it), and opens the
    # manifest's collection list for --deep's counts and hashes.
    deep = json.loads(expect_ok(run_cli("verify", "--config", str(cfg), "--deep", "--json",
                                        env={"MONGO_OSS_AGE_IDENTITY": str(key)})).stdout)
    checked = {c["namespace"]: c for c in deep["deep"]["collections"]}
    assert checked["%s.%s" % (db, COLLECTION.decode())]["expected_documents"] == 50


def test_sealed_full_backup_and_the_python_api(tmp_path, mongo, monkeypatch):
    monkeypatch.delenv("MONGO_OSS_AGE_IDENTITY", raising=False)
    db = "sealed_full"
    client = source_database(mongo, db, 80)
    key = tmp_path / "id.key"
    public = keygen(key)
    recipients = tmp_path / "inst" / "recipients.txt"
    recipients.parent.mkdir()
    recipients.write_text("# the restore key\n%s\n" % public)
    # A recipients file named relative to the config file.
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db, compression="zstd",
                       storage_url="file://%s" % (tmp_path / "bucket"), db_backup_root_path=str(tmp_path / "root"),
                       encrypt_recipients="recipients.txt")
    out = json.loads(expect_ok(run_cli("backup", "--config", str(cfg), "--json")).stdout)
    assert out["key"].endswith(".tar.zst.age")
    archive = tmp_path / "bucket" / out["key"]
    assert archive.read_bytes().startswith(b"age-encryption.org/v1\n")
    with pytest.raises(mob.EncryptionError, match="--identity"):
        mob.extract_archive(str(archive), str(tmp_path / "x"))
    assert mob.extract_archive(str(archive), str(tmp_path / "x"), identity=str(key)) == [out["name"]]
    target = db + "_restored"
    client.drop_database(target)
    with pytest.raises(mob.EncryptionError, match="--identity"):
        mob.restore(config=cfg, full=out["name"], target_db=target, local_dir=tmp_path / "rs")
    assert target not in client.list_database_names()
    mob.restore(config=cfg, full=out["name"], target_db=target, local_dir=tmp_path / "rs", identity=key)
    assert_same_database(client[db], client[target])
    client.drop_database(target)
    # restore_full.py's last_full_backup_file_suffix names the codec only (".tar.zst").
    expect_ok(run_cli("restore", "--config", str(cfg), "--full", out["name"], "--suffix", ".tar.zst",
                      "--identity", str(key), "--target-db", target, "--local-dir", str(tmp_path / "rs1")))
    assert_same_database(client[db], client[target])
    client.drop_database(target)
    monkeypatch.setenv("MONGO_OSS_AGE_IDENTITY", str(key))
    mob.restore(config=cfg, full=out["name"], target_db=target, local_dir=tmp_path / "rs2")
    assert_same_database(client[db], client[target])


def test_encryption_switched_on_mid_cycle(tmp_path, mongo):
    """An installation that turns encryption on in the middle of a cycle: the plain dump and the sealed
    increment restore together with the identity; without it the restore names the sealed archive."""
    db = "sealed_midway"
    client = source_database(mongo, db, 100)
    key = tmp_path / "id.key"
    public = keygen(key)
    values = dict(db_port=str(mongo.port), db_name=db, is_inc_backup="1", full_backup_period="7",
                  storage_url="file://%s" % (tmp_path / "bucket"), db_backup_root_path=str(tmp_path / "root"))
    cfg = write_config(tmp_path / "inst", **values)
    cycle = json.loads(expect_ok(run_cli("backup", "--config", str(cfg), "--json")).stdout)["cycle"]
    cfg = write_config(tmp_path / "inst", encrypt_recipients=public, **values)
    client[db].people.update_many({}, {"$set": {"sealed": True}})
    time.sleep(1.1)
    expect_ok(run_cli("backup", "--config", str(cfg)))
    names = sorted(os.listdir(tmp_path / "bucket" / cycle / "inc_backup"))
    assert len(names) == 1 and names[0].endswith(".tar.gz.age"), names
    assert (tmp_path / "bucket" / cycle / "full_backup.tar.gz").exists()

    target = db + "_restored"
    client.drop_database(target)
    restore = ["restore", "--config", str(cfg), "--cycle", cycle, "--target-db", target,
               "--local-dir", str(tmp_path / "rs")]
    one_error(run_cli(*restore, env={"MONGO_OSS_AGE_IDENTITY": ""}), names[0], "--identity")
    expect_ok(run_cli(*restore, "--identity", str(key)))
    assert_same_database(client[db], client[target])
