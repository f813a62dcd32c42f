"""Restores that read the archive as it downloads, nothing extracted: collections the target lacks
are written in place, those it has are staged in temporary collections renamed over them only once
the whole archive is proven, so an archive refused at its last byte leaves the target database
exactly as it was."""

import json
import os
import signal
import time

from conftest import expect_ok, oss_config, run_cli, write_config
from datagen import assert_same_database, populate
from scripts_util import one_error

TEMP_PREFIX = "mongo_oss_backup.restoring."


def full_backup(tmp_path, mongo, db):
    client = mongo.client()
    client.drop_database(db)
    populate(client[db], n=300)
    client[db].bulk.insert_many([{"_id": i, "pad": "x" * 2000} for i in range(1000)])
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

    # A byte changed in the middle: refused while collections are being staged.
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    archive.write_bytes(bytes(bad))
    one_error(run_cli(*restore), name + ".tar.gz")
    assert sorted(client[target].list_collection_names()) == ["other", "people"]
    assert list(client[target].people.find()) == [{"_id": "live", "v": 1}]

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
    # A target that holds each of the staged collections: every one goes to a temporary first.
    staged = ["people", "bulk", "cafés ünïcode", "empty"]
    for c in staged:
        client[target][c].insert_one({"_id": "live"})
    restore = ["restore", "--config", str(cfg), "--full", name, "--target-db", target, "--drop",
               "--local-dir", str(tmp_path / "rs")]
    r = run_cli(*restore, env={"MONGO_OSS_BACKUP_TEST_CRASH": "restore_staged"})
    assert r.returncode == -signal.SIGABRT, r.stdout + r.stderr
    # Killed after staging a collection: the target still holds what it held, beside a temporary.
    assert len(temporaries(client[target])) == 1
    for c in staged:
        assert list(client[target][c].find()) == [{"_id": "live"}], c

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
    assert (bulk["replaced"], bulk["already_present"], bulk["inserted"]) == (1, 999, 0), bulk
    assert_same_database(client[db], client[target])
    assert temporaries(client[target]) == []


def test_a_download_cut_short_mid_restore_is_resumed_or_refused(tmp_path, mongo, oss_server):
    """The OSS test server cuts the archive's download in half: the restore either resumes it and
    ends equal to the source (what OpenDAL's retried read does today: it reads on from the offset
    it reached), or refuses it in one line with the target as it was."""
    db = "stream_cut"
    client = mongo.client()
    client.drop_database(db)
    populate(client[db], n=200)
    client[db].bulk.insert_many([{"_id": i, "pad": os.urandom(1500).hex()} for i in range(1500)])
    bucket = oss_server.add_bucket("stream-cut")
    cfg = oss_config(tmp_path / "inst", oss_server, bucket, db_port=str(mongo.port), db_name=db,
                     db_backup_root_path=str(tmp_path / "root"))
    env = {"HTTP_PROXY": oss_server.proxy}
    name = json.loads(expect_ok(run_cli("backup", "--config", str(cfg), "--json", env=env)).stdout)["name"]
    target = db + "_r"
    client.drop_database(target)
    client[target].people.insert_one({"_id": "live"})
    served = oss_server.stats()["faults_served"]
    oss_server.fault("truncate", count=1, key_suffix=".tar.gz")
    r = run_cli("restore", "--config", str(cfg), "--full", name, "--target-db", target, "--drop",
                "--local-dir", str(tmp_path / "rs"), env=env)
    assert oss_server.stats()["faults_served"] == served + 1
    if r.returncode == 0:
        assert_same_database(client[db], client[target])
    else:
        one_error(r, name)
        assert list(client[target].people.find()) == [{"_id": "live"}]
    assert temporaries(client[target]) == []


def test_a_refused_increment_calls_the_dump_restore_off(tmp_path, mongo):
    """A cycle's dump streams while its increments download: an increment refused by its CRC64
    stops the dump's restore, and the target database keeps exactly what it held."""
    db = "stream_chain"
    client = mongo.client()
    client.drop_database(db)
    client[db].bulk.insert_many([{"_id": i, "pad": "y" * 2000} for i in range(4000)])
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name=db, is_inc_backup="1",
                       storage_url="file://%s" % (tmp_path / "bucket"), create_bucket_folder="1",
                       db_backup_root_path=str(tmp_path / "root"))
    expect_ok(run_cli("backup", "--config", str(cfg)))
    client[db].more.insert_many([{"_id": i} for i in range(50)])
    time.sleep(1.1)
    expect_ok(run_cli("backup", "--config", str(cfg)))
    (cycle,) = [p for p in (tmp_path / "bucket").iterdir() if p.is_dir()]
    (increment,) = (cycle / "inc_backup").iterdir()
    data = bytearray(increment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    increment.write_bytes(bytes(data))
    target = db + "_r"
    client.drop_database(target)
    client[target].bulk.insert_one({"_id": "live"})
    restore = ["restore", "--config", str(cfg), "--cycle", cycle.name, "--target-db", target, "--drop",
               "--local-dir", str(tmp_path / "rs")]
    r = run_cli(*restore)
    one_error(r, "increment %s is damaged" % increment.name.split(".")[0], "nothing was restored")
    # The increment (kilobytes) is refused long before the dump (8 MB) is staged: called off.
    assert "calling the dump's restore off" in r.stderr
    assert client[target].list_collection_names() == ["bulk"]
    assert list(client[target].bulk.find()) == [{"_id": "live"}]
