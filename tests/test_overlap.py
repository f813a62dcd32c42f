"""The overlapped full dump (issue 14 part 4) on the OSS test server: the archive goes up in
multipart parts while the dump is still being written, the stored object restores byte for byte,
a streamed upload that fails falls back to uploading the finished archive, and a run killed with
SIGKILL while its upload trails the dump loses nothing: the next runs complete the cycle."""

import json
import os
import signal
import subprocess
import sys
import time

from conftest import expect_ok, oss_config, run_cli, write_config
from datagen import assert_same_database
from inc_util import check_nothing_missing
from scripts_util import install_scripts, one_error, run_script


def big_documents(db, prefix, count, size=512 * 1024):
    """Incompressible documents, so that a few of them make an archive of several 1 MiB parts."""
    ids = ["%s%d" % (prefix, i) for i in range(count)]
    for chunk in range(0, count, 4):
        db.blobs.insert_many([{"_id": i, "payload": os.urandom(size)} for i in ids[chunk:chunk + 4]])
    return ids


def bucket_files(oss_server, bucket, prefix):
    import alibabacloud_oss_v2 as oss
    sdk = oss_server.sdk_client()
    listed = sdk.list_objects_v2(oss.ListObjectsV2Request(bucket=bucket, prefix=prefix)).contents or []
    return {o.key: sdk.get_object(oss.GetObjectRequest(bucket=bucket, key=o.key)).body.read() for o in listed}


def test_streamed_full_backup_restores_and_survives_a_failed_stream(tmp_path, mongo, oss_server):
    client = mongo.client()
    src = client.overlap_src
    client.drop_database("overlap_src")
    big_documents(src, "b", 12)
    src.small.insert_many([{"_id": i, "v": "x" * i} for i in range(300)])
    src.small.create_index("v")
    bucket = oss_server.add_bucket("overlap-full")
    cfg = oss_config(tmp_path / "inst", oss_server, bucket, db_port=str(mongo.port), db_name="overlap_src",
                     upload_part_size_mb="1", db_backup_root_path=str(tmp_path / "root"))
    env = {"HTTP_PROXY": oss_server.proxy}

    r = expect_ok(run_cli("backup", "--config", str(cfg), "--json", env=env))
    out = json.loads(r.stdout)
    assert "while archiving" in r.stderr, r.stderr
    # Several parts: the object was built from the stream, not sent in one PUT at the end.
    assert out["size"] > 4 * (1 << 20)
    stored = oss_server.object_bytes(bucket, out["key"])
    assert len(stored) == out["size"]
    # Nothing is left locally once the object is verified and recorded.
    assert [p.name for p in (tmp_path / "root").iterdir() if not p.name.startswith("mongo_oss_backup_")] == [], \
        list((tmp_path / "root").iterdir())
    expect_ok(run_cli("verify", "--config", str(cfg), "--deep", out["name"], env=env))
    client.drop_database("overlap_dst")
    expect_ok(run_cli("restore", "--config", str(cfg), "--full", out["name"], "--target-db", "overlap_dst",
                      "--local-dir", str(tmp_path / "rs"), env=env))
    assert_same_database(src, client.overlap_dst)

    # Every part of the streamed upload fails, past the retries: the stream is abandoned, the
    # finished archive is uploaded from the local file instead (another multipart upload), and
    # the run succeeds.
    oss_server.fault("500", count=1000, methods=["PUT"], first_upload=True)
    time.sleep(1.1)  # a new minute or second for the next name
    r = expect_ok(run_cli("backup", "--config", str(cfg), "--json", env=env))
    assert "uploading the finished archive" in r.stderr, r.stderr
    oss_server.admin("faults", {"clear": True})
    second = json.loads(r.stdout)
    assert second["name"] != out["name"]
    expect_ok(run_cli("verify", "--config", str(cfg), "--deep", second["name"], env=env))


def test_sigkill_while_the_upload_trails_the_dump(tmp_path, mongo, oss_server):
    db = "overlap_killed"
    client = mongo.client()
    client.drop_database(db)
    inserted = big_documents(client[db], "a", 24)
    bucket = oss_server.add_bucket("overlap-killed")
    inst = tmp_path / "inst"
    root = tmp_path / "root"
    oss_config(inst, oss_server, bucket, db_port=str(mongo.port), db_name=db, is_inc_backup="1",
               full_backup_period="7", upload_part_size_mb="1", db_backup_root_path=str(root))
    install_scripts(inst)
    env = dict(os.environ, HTTP_PROXY=oss_server.proxy)
    # The first part hangs: the parts behind it fill the upload's queue and the archive waits,
    # unfinished, while the dump goes on.
    served = oss_server.stats()["faults_served"]
    oss_server.fault("stall", count=1, methods=["PUT"], seconds=60)
    proc = subprocess.Popen([sys.executable, str(inst / "start.py")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and oss_server.stats()["faults_served"] == served:
            time.sleep(0.1)
        assert oss_server.stats()["faults_served"] == served + 1, "no part upload started"
        time.sleep(0.5)
        # The upload began before the archive was finished: no sidecar, so nothing looks stored.
        archives = list(root.rglob("full_backup.tar.gz"))
        assert len(archives) == 1 and not list(root.rglob("*.pos.json")), list(root.rglob("*"))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        oss_server.admin("faults", {"clear": True})
    assert bucket_files(oss_server, bucket, "") == {}, "a killed run left an object in the bucket"

    more = ["m%d" % i for i in range(10)]
    client[db].small.insert_many([{"_id": i} for i in more])
    for _ in range(2):
        time.sleep(1.1)
        expect_ok(run_script(inst / "start.py", env={"HTTP_PROXY": oss_server.proxy}))
    cycle = json.loads((root / "mongodb_inc_backup_info.json").read_text())["last_circle_backup_dir_name"]
    check_nothing_missing(bucket_files(oss_server, bucket, cycle + "/"), db, inserted + more)
    expect_ok(run_cli("verify", "--config", str(inst / "config.properties"), cycle,
                      env={"HTTP_PROXY": oss_server.proxy}))


def test_streamed_to_s3_in_parts(tmp_path, mongo, moto_s3):
    """On S3 the streamed parts are what the ETag check recomputes (MD5 of the parts' MD5s): a part
    cut at another size than the uploader's would fail the verification."""
    import boto3
    client = mongo.client()
    client.drop_database("overlap_s3")
    big_documents(client.overlap_s3, "s", 24)
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="mk",
                      aws_secret_access_key="ms")
    s3.create_bucket(Bucket="overlap-s3")
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name="overlap_s3", upload_part_size_mb="5",
                       storage_url="s3://overlap-s3?endpoint=%s&region=us-east-1" % moto_s3,
                       accessKeyId="mk", accessKeySecret="ms", db_backup_root_path=str(tmp_path / "root"))
    r = expect_ok(run_cli("backup", "--config", str(cfg), "--json"))
    assert "while archiving" in r.stderr, r.stderr
    out = json.loads(r.stdout)
    etag = s3.head_object(Bucket="overlap-s3", Key=out["key"])["ETag"].strip('"')
    assert etag.endswith("-3"), etag  # 12 MiB of incompressible documents in 5 MiB parts
    client.drop_database("overlap_s3_dst")
    expect_ok(run_cli("restore", "--config", str(cfg), "--full", out["name"], "--target-db", "overlap_s3_dst",
                      "--local-dir", str(tmp_path / "rs")))
    assert_same_database(client.overlap_s3, client.overlap_s3_dst)


def test_folder_bucket_never_shows_a_cut_stream(tmp_path, mongo):
    """A folder bucket gets the stream too, written aside and renamed into place: a run killed while
    it streams leaves nothing at the backup's key (which the next run would refuse to overwrite)."""
    client = mongo.client()
    client.drop_database("overlap_folder")
    big_documents(client.overlap_folder, "f", 8)
    bucket = tmp_path / "bucket"
    cfg = write_config(tmp_path / "inst", db_port=str(mongo.port), db_name="overlap_folder", is_inc_backup="1",
                       upload_part_size_mb="1", storage_url="file://%s" % bucket,
                       db_backup_root_path=str(tmp_path / "root"))
    r = run_cli("backup", "--config", str(cfg), env={"MONGO_OSS_BACKUP_TEST_CRASH": "after_dump"})
    assert r.returncode == -signal.SIGABRT, r.stdout + r.stderr
    stored = [p for p in bucket.rglob("*") if p.is_file() and ".partial" not in p.parts]
    assert stored == [], stored
    [partial] = [p for p in (bucket / ".partial").rglob("*") if p.is_file()]
    time.sleep(1.1)
    # A partial file untouched for a week is removed by the next backup, with its folders.
    week_ago = time.time() - 8 * 86400
    os.utime(partial, (week_ago, week_ago))
    r = expect_ok(run_cli("backup", "--config", str(cfg), "--json"))
    assert "while archiving" in r.stderr, r.stderr
    assert not (bucket / ".partial").exists(), list((bucket / ".partial").rglob("*"))
    cycle = json.loads(r.stdout)["cycle"]
    expect_ok(run_cli("verify", "--config", str(cfg), "--deep", cycle))
    client.drop_database("overlap_folder_dst")
    expect_ok(run_cli("restore", "--config", str(cfg), "--cycle", cycle, "--target-db", "overlap_folder_dst",
                      "--local-dir", str(tmp_path / "rs")))
    assert_same_database(client.overlap_folder, client.overlap_folder_dst)


def test_local_copy_0_writes_only_collections_in_flight(tmp_path, mongo, oss_server):
    """local_copy=0: the archive goes to the bucket only. A run killed once its upload completed,
    before recording it, leaves just the sidecar with the streamed size and CRC64: the next run
    checks the object against them and records it. A stream that fails fails the run in one line,
    and the next run dumps again."""
    db = "overlap_nocopy"
    client = mongo.client()
    client.drop_database(db)
    inserted = big_documents(client[db], "n", 12)
    bucket = oss_server.add_bucket("overlap-nocopy")
    root = tmp_path / "root"
    cfg = oss_config(tmp_path / "inst", oss_server, bucket, db_port=str(mongo.port), db_name=db,
                     is_inc_backup="1", full_backup_period="7", upload_part_size_mb="1", local_copy="0",
                     db_backup_root_path=str(root))
    env = {"HTTP_PROXY": oss_server.proxy}

    # The archive is complete (its stream waits for the commit): no copy of it on the disk.
    r = run_cli("backup", "--config", str(cfg), env=dict(env, MONGO_OSS_BACKUP_TEST_CRASH="after_archive"))
    assert r.returncode == -signal.SIGABRT, r.stdout + r.stderr
    assert [p for p in root.rglob("*") if p.is_file() and ".tar." in p.name] == [], list(root.rglob("*"))
    assert bucket_files(oss_server, bucket, "") == {}

    time.sleep(1.1)
    r = run_cli("backup", "--config", str(cfg), env=dict(env, MONGO_OSS_BACKUP_TEST_CRASH="after_upload"))
    assert r.returncode == -signal.SIGABRT, r.stdout + r.stderr
    (sidecar,) = root.rglob("*.pos.json")
    assert [p for p in root.rglob("*") if p.is_file() and p.name.endswith(".tar.gz")] == []
    cycle = sidecar.parent.name
    assert list(bucket_files(oss_server, bucket, "")) == [cycle + "/full_backup.tar.gz"]

    more = ["m%d" % i for i in range(10)]
    client[db].small.insert_many([{"_id": i} for i in more])
    time.sleep(1.1)
    r = expect_ok(run_cli("backup", "--config", str(cfg), "--json", env=env))
    assert "stored by an earlier run that died before recording it" in r.stderr, r.stderr
    # The dead run's cycle is recorded whole (as with a local copy, the run that recorded it
    # starts a cycle of its own: the dead one never became the current cycle).
    assert not list(root.rglob("*.pos.json"))
    expect_ok(run_cli("verify", "--config", str(cfg), cycle, env=env))
    check_nothing_missing(bucket_files(oss_server, bucket, cycle + "/"), db, inserted)
    current = json.loads(r.stdout)["cycle"]
    check_nothing_missing(bucket_files(oss_server, bucket, current + "/"), db, inserted + more)
    expect_ok(run_cli("verify", "--config", str(cfg), current, env=env))

    # A cycle's streamed dump that fails past its retries (after its sidecar was written): the
    # run fails in one line; the next one finds no object for the sidecar and starts over.
    cfg3 = oss_config(tmp_path / "inst3", oss_server, bucket, db_port=str(mongo.port), db_name=db,
                      is_inc_backup="1", upload_part_size_mb="1", local_copy="0",
                      db_backup_root_path=str(tmp_path / "root3"))
    oss_server.fault("500", count=1000, methods=["PUT"], first_upload=True)
    try:
        time.sleep(1.1)
        one_error(run_cli("backup", "--config", str(cfg3), env=env), "local_copy=0", "the next run dumps again")
    finally:
        oss_server.admin("faults", {"clear": True})
    assert len(list((tmp_path / "root3").rglob("*.pos.json"))) == 1
    time.sleep(1.1)
    r = expect_ok(run_cli("backup", "--config", str(cfg3), "--json", env=env))
    assert "never reached" in r.stderr and not list((tmp_path / "root3").rglob("*.pos.json")), r.stderr
    expect_ok(run_cli("verify", "--config", str(cfg3), json.loads(r.stdout)["cycle"], env=env))

    # Full mode: a stream that fails past its retries leaves nothing to upload instead, only the
    # archive's entry, with which the next run finds out that the object never reached the bucket.
    oss_server.fault("500", count=1000, methods=["PUT"], first_upload=True)
    client[db].small.insert_one({"_id": "late"})
    try:
        cfg_full = oss_config(tmp_path / "full", oss_server, bucket, db_port=str(mongo.port), db_name=db,
                              upload_part_size_mb="1", local_copy="0", db_backup_root_path=str(tmp_path / "root2"))
        r = run_cli("backup", "--config", str(cfg_full), env=env)
        one_error(r, "local_copy=0", "the next run dumps again")
    finally:
        oss_server.admin("faults", {"clear": True})
    [entry] = [p for p in (tmp_path / "root2").rglob("*") if p.is_file() and ".tar." in p.name]
    assert entry.name.endswith(".tar.gz.entry.json"), entry
    time.sleep(1.1)
    r = expect_ok(run_cli("backup", "--config", str(cfg_full), "--json", env=env))
    assert "never reached" in r.stderr and not entry.exists(), r.stderr
    out = json.loads(r.stdout)
    client.drop_database(db + "_r")
    expect_ok(run_cli("restore", "--config", str(cfg_full), "--full", out["name"], "--target-db", db + "_r",
                      "--local-dir", str(tmp_path / "rs"), env=env))
    assert_same_database(client[db], client[db + "_r"])
