"""Immutable backups: under a bucket retention policy (OSS WORM, GetBucketWorm on the OSS test server,
which refuses to delete protected objects; S3 Object Lock's default retention, on moto) `list` shows until when each cycle is protected and
`prune` keeps the protected cycles whole, naming them, instead of failing half-way. The two-key setup:
the cron key may put/get/list but not delete, its backups still succeed (retention is said, not
failed), and prune runs with the other key."""

import json

import pytest

from conftest import OSS_AK, OSS_SK, expect_ok, oss_config, run_cli, write_config

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


def test_s3_object_lock_retention_is_read(tmp_path, moto_s3):
    """On S3 the bucket's default Object Lock retention is read as the retention policy (list shows
    it; prune's rule is the one tested on OSS above). Writing into such a bucket is refused by moto
    without Content-MD5 or an SDK checksum header, which our uploads do not send yet: the failure
    is one line naming Object Lock (the README says so)."""
    import boto3
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="mk",
                      aws_secret_access_key="ms")
    s3.create_bucket(Bucket="lock-cycles", ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(Bucket="lock-cycles", ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 1}}})
    cfg = write_config(tmp_path / "lock", storage_url="s3://lock-cycles?endpoint=%s&region=us-east-1" % moto_s3,
                       accessKeyId="mk", accessKeySecret="ms", db_backup_root_path=str(tmp_path / "root"))
    listed = json.loads(expect_ok(run_cli("list", "--config", str(cfg), "--json")).stdout)
    assert listed["retention_days"] == 365 and listed["cycles"] == []
    src = tmp_path / "f"
    src.write_bytes(b"data")
    import mongo_oss_backup as mob
    with pytest.raises(mob.StorageError) as err:
        mob.Storage(config=str(cfg)).put_file(str(src), "k")
    assert "Object Lock" in str(err.value) and "\n" not in str(err.value)

    s3.create_bucket(Bucket="no-lock")
    plain = write_config(tmp_path / "plain", storage_url="s3://no-lock?endpoint=%s&region=us-east-1" % moto_s3,
                         accessKeyId="mk", accessKeySecret="ms")
    assert "retention_days" not in json.loads(expect_ok(run_cli("list", "--config", str(plain), "--json")).stdout)
