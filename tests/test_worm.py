"""Immutable backups: under a bucket retention policy (OSS WORM, GetBucketWorm on the OSS test server,
which refuses to delete protected objects; S3 Object Lock's default retention, on moto) `list` shows until when each cycle is protected and
`prune` keeps the protected cycles whole, naming them, instead of failing half-way. The two-key setup:
the cron key may put/get/list but not delete, its backups still succeed (retention is said, not
failed), and prune runs with the other key."""

import json

from conftest import OSS_AK, OSS_SK, expect_ok, oss_config, run_cli, s3_rule_stats, write_config
from datagen import assert_same_database
from scripts_util import one_error

DAYS = ["2026-03-01 10:00:00", "2026-03-03 10:00:00", "2026-03-05 10:00:00"]


def cycles_over_days(tmp_path, server, bucket, mongo, db, days, **keys):
    """One cycle per day in `days` (full_backup_period=1, the clock set to each day)."""
    client = mongo.client()
    client.drop_database(db)
    client[db].c.insert_many([{"_id": i} for i in range(50)])
    cfg = oss_config(tmp_path / "cron", server, bucket, db_port=str(mongo.port), db_name=db, is_inc_backup="1",
                     full_backup_period="1", db_backup_root_path=str(tmp_path / "root"), **keys)
    runs = [run_cli("backup", "--config", str(cfg), env={"MONGO_OSS_BACKUP_TEST_CLOCK": d}) for d in days]
    return cfg, runs


def cycle_names(server, bucket):
    root = server.root / bucket / "objects"
    return sorted({p.name.split("%2F")[0] for p in root.iterdir() if "%2F" in p.name})


def test_prune_keeps_protected_cycles_whole_and_names_them(tmp_path, via_proxy, oss_server, mongo):
    bucket = oss_server.add_bucket("worm-prune")
    cfg, runs = cycles_over_days(tmp_path, oss_server, bucket, mongo, "wormprune", DAYS)
    for r in runs:
        expect_ok(r)
    names = cycle_names(oss_server, bucket)
    assert len(names) == 3, names
    oss_server.admin("worm", {"bucket": bucket, "days": 30})
    # The oldest cycle was stored 40 days ago: its protection has ended.
    oss_server.admin("age", {"bucket": bucket, "prefix": names[0], "days": 40})

    listed = json.loads(expect_ok(run_cli("list", "--config", str(cfg), "--json")).stdout)
    assert listed["retention_days"] == 30 and listed["retention_locked"] is True
    protected = {c["name"]: c.get("protected_until") for c in listed["cycles"]}
    assert protected[names[0]] is None and protected[names[1]] and protected[names[2]], protected
    text = run_cli("list", "--config", str(cfg)).stdout
    assert "protected by the bucket's retention policy (WORM) until" in text
    assert "bucket retention policy (WORM): 30 days, locked" in text
    r = expect_ok(run_cli("check-config", "--config", str(cfg), "--bucket"))
    assert "bucket retention policy: 30 days" in r.stderr and "warning" not in r.stderr, r.stderr

    r = expect_ok(run_cli("prune", "--config", str(cfg), "--keep", "1"))
    assert "deleted cycle %s" % names[0] in r.stdout, r.stdout
    assert "kept cycle %s: protected by the bucket's retention policy (WORM) until" % names[1] in r.stdout
    assert cycle_names(oss_server, bucket) == names[1:]
    # Nothing of the protected cycle went (a cycle goes whole or not at all).
    listed = json.loads(expect_ok(run_cli("list", "--config", str(cfg), "--json")).stdout)
    assert [c["complete"] for c in listed["cycles"]] == [True, True]
    oss_server.admin("worm", {"bucket": bucket, "days": None})


def test_cron_key_without_delete_rights(tmp_path, via_proxy, oss_server, mongo):
    """keep_cycles=1 on a key that may not delete: every backup succeeds and says why nothing was
    pruned; prune with the other key then deletes."""
    bucket = oss_server.add_bucket("worm-two-keys")
    oss_server.admin("limited_key", {"access_key_id": "cron-key", "access_key_secret": "cron-secret"})
    cfg, runs = cycles_over_days(tmp_path, oss_server, bucket, mongo, "wormkeys", DAYS[:2], keep_cycles="1",
                                 accessKeyId="cron-key", accessKeySecret="cron-secret")
    for r in runs:
        expect_ok(r)
    assert "old cycles were not deleted" in runs[1].stderr and "AccessDenied" in runs[1].stderr, runs[1].stderr
    names = cycle_names(oss_server, bucket)
    assert len(names) == 2
    admin_cfg = oss_config(tmp_path / "admin", oss_server, bucket, accessKeyId=OSS_AK, accessKeySecret=OSS_SK,
                           db_name="wormkeys", is_inc_backup="1", full_backup_period="1",
                           db_backup_root_path=str(tmp_path / "root"))
    r = expect_ok(run_cli("prune", "--config", str(admin_cfg), "--keep", "1"))
    assert "deleted cycle %s" % names[0] in r.stdout
    assert cycle_names(oss_server, bucket) == names[1:]


def test_s3_object_lock_bucket_takes_every_upload_of_a_cycle(tmp_path, mongo, moto_s3):
    """Into a bucket with a default Object Lock retention, S3 refuses a PutObject or an UploadPart that
    carries neither Content-MD5 nor an x-amz-checksum header; ours carry a CRC32C, which the S3 test
    server verifies on every put and part. Two cycles (the first with an increment, the dumps in
    5 MiB parts) are stored; list shows until when each is protected; the first restores equal to
    its source; prune keeps both, naming the one it would have deleted. With checksum=none in the
    URL the same bucket refuses the backup, in one line naming Object Lock."""
    import boto3
    from test_overlap import big_documents
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="mk",
                      aws_secret_access_key="ms")
    s3.create_bucket(Bucket="lock-cycles", ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(Bucket="lock-cycles", ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 1}}})
    client = mongo.client()
    client.drop_database("s3lock")
    big_documents(client.s3lock, "b", 16)  # 8 MiB, incompressible: two parts
    url = "s3://lock-cycles?endpoint=%s&region=us-east-1" % moto_s3
    keys = dict(db_port=str(mongo.port), db_name="s3lock", is_inc_backup="1", full_backup_period="1",
                upload_part_size_mb="5", keep_cycles="2", accessKeyId="mk", accessKeySecret="ms",
                db_backup_root_path=str(tmp_path / "root"))
    cfg = write_config(tmp_path / "lock", storage_url=url, **keys)

    def backup(day):
        return expect_ok(run_cli("backup", "--config", str(cfg), env={"MONGO_OSS_BACKUP_TEST_CLOCK": day}))

    backup("2026-03-01 10:00:00")
    client.s3lock.small.insert_many([{"_id": i, "v": "after the dump"} for i in range(100)])
    client.s3lock.blobs.delete_one({"_id": "b0"})
    backup("2026-03-01 11:00:00")  # an increment of the same cycle
    backup("2026-03-03 10:00:00")  # a new cycle
    stats = s3_rule_stats(moto_s3)["lock-cycles"]
    assert stats["parts"] >= 4 and stats["puts"] >= 3, stats
    assert stats["verified"] == stats["puts"] + stats["parts"], stats
    assert "refused_without_checksum" not in stats and "bad_digest" not in stats, stats

    listed = json.loads(expect_ok(run_cli("list", "--config", str(cfg), "--json")).stdout)
    assert listed["retention_days"] == 365, listed
    cycles = listed["cycles"]
    assert len(cycles) == 2 and all(c["complete"] and c["protected_until"] for c in cycles), cycles
    client.drop_database("s3lock_dst")
    expect_ok(run_cli("restore", "--config", str(cfg), "--cycle", cycles[0]["name"], "--target-db", "s3lock_dst"))
    assert_same_database(client.s3lock, client.s3lock_dst)

    # check-config asks the bucket only when told to; keep_cycles=2 daily cycles is under a year.
    r = expect_ok(run_cli("check-config", "--config", str(cfg), "--bucket"))
    assert json.loads(r.stdout)["keep_cycles"] == 2
    assert "bucket retention policy: 365 days" in r.stderr, r.stderr
    assert ("warning: keep_cycles=2 keeps about 2 days of cycles, but the bucket's retention policy protects "
            "every object for 365 days") in r.stderr, r.stderr
    r = expect_ok(run_cli("prune", "--config", str(cfg), "--keep", "1"))
    assert "kept cycle %s: protected by the bucket's retention policy (WORM) until" % cycles[0]["name"] in r.stdout
    assert len(json.loads(expect_ok(run_cli("list", "--config", str(cfg), "--json")).stdout)["cycles"]) == 2

    bare = write_config(tmp_path / "bare", storage_url=url + "&checksum=none",
                        **dict(keys, db_backup_root_path=str(tmp_path / "bare-root")))
    one_error(run_cli("backup", "--config", str(bare)), "Object Lock", "checksum=none")

    s3.create_bucket(Bucket="no-lock")
    plain = write_config(tmp_path / "plain", storage_url="s3://no-lock?endpoint=%s&region=us-east-1" % moto_s3,
                         accessKeyId="mk", accessKeySecret="ms")
    assert "retention_days" not in json.loads(expect_ok(run_cli("list", "--config", str(plain), "--json")).stdout)
    assert "bucket retention policy: none" in expect_ok(run_cli("check-config", "--config", str(plain),
                                                               "--bucket")).stderr
    missing = write_config(tmp_path / "missing", accessKeyId="mk", accessKeySecret="ms",
                           storage_url="s3://never-made?endpoint=%s&region=us-east-1" % moto_s3)
    one_error(run_cli("check-config", "--config", str(missing), "--bucket"), "never-made", "does not exist")
