"""Restores that read the archive as it downloads, nothing extracted: the collections are staged in
temporary collections and renamed into place only once the whole archive is proven, so an archive
refused at its last byte leaves the target database exactly as it was."""

import json
import signal

from conftest import expect_ok, run_cli, write_config
from datagen import assert_same_database, populate
from scripts_util import one_error

TEMP_PREFIX = "mongo_oss_backup.restoring."


def full_backup(tmp_path, mongo, db):
    client = mongo.client()
    client.drop_database(db)
    populate(client[db], n=300)
    client[db].bulk.insert_many([{"_id": i, "pad": "x" * 2000} for i in range(3000)])
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db,
                       storage_url="file://%s" % (tmp_path / "bucket"), create_bucket_folder="1",
                       db_backup_root_path=str(tmp_path / "root"))
    expect_ok(run_cli("backup", "--config", str(cfg)))
    (name,) = [f["name"] for f in json.loads(run_cli("list", "--config", str(cfg), "--json").stdout)["full_backups"]]
    return client, cfg, name


def temporaries(db):
    return [n for n in db.list_collection_names() if n.startswith(TEMP_PREFIX)]


def test_an_archive_refused_at_its_end_leaves_the_target_untouched(tmp_path, mongo):
    db = "stream_refused"
    client, cfg, name = full_backup(tmp_path, mongo, db)
    archive = tmp_path / "bucket" / (name + ".tar.gz")
    good = archive.read_bytes()
    # The gzip trailer's CRC32: same size, every tar entry readable, refused only at the last bytes.
    bad = bytearray(good)
    bad[-8] ^= 0xFF
    archive.write_bytes(bytes(bad))
    target = db + "_r"
    client.drop_database(target)
    client[target].people.insert_one({"_id": "live", "v": 1})
    client[target].other.insert_one({"_id": "kept"})
    restore = ["restore", "--config", str(cfg), "--full", name, "--target-db", target, "--drop",
               "--local-dir", str(tmp_path / "rs")]
    r = run_cli(*restore)
    one_error(r, name + ".tar.gz", "not a readable archive", "nothing was restored")
    assert sorted(client[target].list_collection_names()) == ["other", "people"]
    assert list(client[target].people.find()) == [{"_id": "live", "v": 1}]
    assert "putting the restored collections in place" not in r.stderr
    # Nothing was extracted or kept on the local disk.
    assert not (tmp_path / "rs").exists() or not any((tmp_path / "rs").iterdir())

    archive.write_bytes(good)
    r = expect_ok(run_cli(*restore))
    assert "as it downloads" in r.stderr and "in place" in r.stderr, r.stderr
    assert_same_database(client[db], client[target])
    assert temporaries(client[target]) == []
    assert not any((tmp_path / "rs").iterdir())


def test_a_killed_streamed_restore_leaves_temporaries_the_next_one_drops(tmp_path, mongo):
    db = "stream_killed"
    client, cfg, name = full_backup(tmp_path, mongo, db)
    target = db + "_r"
    client.drop_database(target)
    client[target].people.insert_one({"_id": "live"})
    restore = ["restore", "--config", str(cfg), "--full", name, "--target-db", target, "--drop",
               "--local-dir", str(tmp_path / "rs")]
    r = run_cli(*restore, env={"MONGO_OSS_BACKUP_TEST_CRASH": "restore_staged"})
    assert r.returncode == -signal.SIGABRT, r.stdout + r.stderr
    # Killed after staging a collection: the target still holds what it held, beside a temporary.
    assert len(temporaries(client[target])) == 1
    assert list(client[target].people.find()) == [{"_id": "live"}]

    r = expect_ok(run_cli(*restore))
    assert "left by an interrupted restore" in r.stderr
    assert_same_database(client[db], client[target])
    assert temporaries(client[target]) == []


def test_a_streamed_restore_runs_again_over_itself(tmp_path, mongo):
    """Without --drop, a second restore finds the documents there: the staged copy is written into
    them by _id (changed ones replaced, the rest counted), and the temporaries go."""
    db = "stream_twice"
    client, cfg, name = full_backup(tmp_path, mongo, db)
    target = db + "_r"
    client.drop_database(target)
    restore = ["restore", "--config", str(cfg), "--full", name, "--target-db", target,
               "--local-dir", str(tmp_path / "rs"), "--json"]
    expect_ok(run_cli(*restore))
    client[target].bulk.update_one({"_id": 7}, {"$set": {"pad": "changed"}})
    r = expect_ok(run_cli(*restore))
    report = json.loads(r.stdout)
    bulk = next(c for d in report["databases"] for c in d["collections"] if c["collection"] == "bulk")
    assert (bulk["replaced"], bulk["already_present"], bulk["inserted"]) == (1, 2999, 0), bulk
    assert_same_database(client[db], client[target])
    assert temporaries(client[target]) == []
