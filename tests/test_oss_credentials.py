"""OSS without an AccessKey on disk, and with server-side encryption, against the OSS test server
(signatures checked with the official SDK; STS security tokens checked, expired ones refused) and its
ECS instance metadata service: RAM-role credentials fetched and renewed while a multipart upload runs
past the expiry of the token it began with; SSE asked for on every write and checked on the object."""

import os
import time

import alibabacloud_oss_v2 as oss
import fastcrc
import pytest

import mongo_oss_backup as mob
from conftest import expect_ok, oss_config, run_cli, write_config


@pytest.fixture
def metadata(monkeypatch, oss_server):
    """The test server's instance metadata service, in place of 100.100.100.200."""
    monkeypatch.setenv("MONGO_OSS_BACKUP_TEST_ECS_METADATA", "http://127.0.0.1:%d" % oss_server.port)
    yield oss_server
    oss_server.admin("sts", {"role": "backup-role", "ttl": 3600})


def payload(size: int) -> bytes:
    block = os.urandom(1 << 16)
    return (block * (size // len(block) + 1))[:size]


def role_config(directory, server, bucket, **values):
    return oss_config(directory, server, bucket, accessKeyId="", accessKeySecret="",
                      oss_credentials="ecs_ram_role", **values)


def test_ram_role_credentials_renewed_during_a_multipart_upload(tmp_path, via_proxy, metadata):
    """Each token says it lives 11 seconds (the least a signer takes for one request is 10), and the
    OSS side's clock runs 9 seconds ahead: it refuses a token 2 seconds after it was handed out.
    Two parts are held up 1.5 seconds each, so the upload outlives the token it began with."""
    server = metadata
    bucket = server.add_bucket("ram-role-upload")
    server.admin("sts", {"role": "backup-role", "ttl": 11, "skew": 9})
    data = payload(40 << 20)
    src = tmp_path / "big.tar.gz"
    src.write_bytes(data)
    before = server.stats()
    server.fault("delay", count=2, methods=["PUT"], seconds=1.5)
    done = mob.Storage(config=str(role_config(tmp_path, server, bucket, upload_concurrency="1"))).put_file(
        str(src), "cycle/full_backup.tar.gz")
    assert done["crc64"] == fastcrc.crc64.xz(data)
    assert server.object_bytes(bucket, "cycle/full_backup.tar.gz") == data
    after = server.stats()
    assert after["rejected"] == before["rejected"], "a request went out with an expired token"
    assert after["ops"]["UploadPart"] - before["ops"].get("UploadPart", 0) >= 5
    # Fresh credentials as the old ones ran out, each with its own token.
    assert after["metadata_credentials"] - before["metadata_credentials"] >= 3
    assert after["sts_tokens_used"] - before["sts_tokens_used"] >= 3
    assert after["uploads_outliving_their_token"] - before["uploads_outliving_their_token"] == 1


def test_backup_on_a_ram_role_with_no_key_anywhere(tmp_path, via_proxy, metadata, mongo):
    server = metadata
    bucket = server.add_bucket("ram-role-backup")
    server.admin("sts", {"role": "backup-role", "ttl": 900})
    client = mongo.client()
    client.drop_database("ramrole")
    client.ramrole.items.insert_many([{"_id": i, "v": "x" * 200} for i in range(2000)])
    cfg = role_config(tmp_path / "inst", server, bucket, db_port=str(mongo.port), db_name="ramrole",
                      is_inc_backup="0", db_backup_root_path=str(tmp_path / "root"),
                      oss_ecs_role="backup-role")
    check = expect_ok(run_cli("check-config", "--config", str(cfg)))
    assert "ecs_ram_role" in check.stdout
    before = server.stats()
    expect_ok(run_cli("backup", "--config", str(cfg)))
    assert server.stats()["metadata_credentials"] > before["metadata_credentials"]
    expect_ok(run_cli("verify", "--config", str(cfg)))  # size and CRC64 of what is stored, on the role too

    # A role the instance does not have: one line naming it.
    bad = role_config(tmp_path / "bad", server, bucket, db_port=str(mongo.port), db_name="ramrole",
                      is_inc_backup="0", db_backup_root_path=str(tmp_path / "root2"), oss_ecs_role="no-such-role")
    r = run_cli("backup", "--config", str(bad))
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode != 0 and "RAM role" in lines[-1], r.stderr


def test_sts_token_checked_and_expiry_refused_in_one_line(tmp_path, via_proxy, oss_server):
    bucket = oss_server.add_bucket("sts-static")
    src = tmp_path / "f"
    src.write_bytes(b"data" * 1000)
    good = oss_server.admin("sts/issue", {"ttl": 3600})
    cfg = oss_config(tmp_path / "good", oss_server, bucket, accessKeyId=good["access_key_id"],
                     accessKeySecret=good["access_key_secret"], oss_security_token=good["security_token"])
    assert mob.Storage(config=str(cfg)).put_file(str(src), "k")["size"] == 4000

    wrong = oss_config(tmp_path / "wrong", oss_server, bucket, accessKeyId=good["access_key_id"],
                       accessKeySecret=good["access_key_secret"], oss_security_token="not-the-token")
    with pytest.raises(mob.StorageAuthError, match="security token you provided is invalid"):
        mob.Storage(config=str(wrong)).put_file(str(src), "k2")

    short = oss_server.admin("sts/issue", {"ttl": 1})
    time.sleep(1.5)
    expired = oss_config(tmp_path / "expired", oss_server, bucket, accessKeyId=short["access_key_id"],
                         accessKeySecret=short["access_key_secret"], oss_security_token=short["security_token"])
    with pytest.raises(mob.StorageAuthError) as err:
        mob.Storage(config=str(expired)).put_file(str(src), "k3")
    assert "\n" not in str(err.value) and "has expired" in str(err.value)
    assert short["security_token"] not in str(err.value)


@pytest.mark.parametrize("algorithm,key_id", [("AES256", None), ("KMS", "key-1234")])
def test_server_side_encryption_on_every_write(tmp_path, via_proxy, oss_server, algorithm, key_id):
    bucket = oss_server.add_bucket("sse-" + algorithm.lower())
    extra = {"oss_kms_key_id": key_id} if key_id else {}
    cfg = oss_config(tmp_path, oss_server, bucket, oss_server_side_encryption=algorithm, **extra)
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(payload(1 << 20))
    big.write_bytes(payload(24 << 20))
    before = oss_server.stats()["sse"]
    store = mob.Storage(config=str(cfg))
    store.put_file(str(small), "small.tar.gz")
    store.put_file(str(big), "big.tar.gz")
    after = oss_server.stats()["sse"]
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
    # Every write asked for it: the single PUT and the multipart upload's initiation (OSS applies
    # it to the parts); none without.
    assert delta == {"PutObject %s" % algorithm: 1, "InitiateMultipartUpload %s" % algorithm: 1}, delta
    for key in ("small.tar.gz", "big.tar.gz"):
        head = oss_server.sdk_client("v4").head_object(oss.HeadObjectRequest(bucket=bucket, key=key))
        assert head.server_side_encryption == algorithm
        if key_id:
            assert head.server_side_encryption_key_id == key_id


def test_an_object_stored_unencrypted_is_refused(tmp_path, via_proxy, oss_server):
    bucket = oss_server.add_bucket("sse-ignored")
    cfg = oss_config(tmp_path, oss_server, bucket, oss_server_side_encryption="AES256")
    src = tmp_path / "f"
    src.write_bytes(b"data")
    oss_server.admin("ignore_sse", {"ignore": True})
    try:
        with pytest.raises(mob.IntegrityError, match="stored unencrypted .* not with server-side encryption AES256"):
            mob.Storage(config=str(cfg)).put_file(str(src), "k")
    finally:
        oss_server.admin("ignore_sse", {"ignore": False})


def test_bad_encryption_and_credential_keys_are_refused(tmp_path):
    for values, needle in [
        ({"oss_server_side_encryption": "AES128"}, "oss_server_side_encryption"),
        ({"oss_kms_key_id": "k"}, "needs oss_server_side_encryption=KMS"),
        ({"oss_credentials": "instance"}, "is not access_key or ecs_ram_role"),
        ({"oss_credentials": "ecs_ram_role"}, "leave it empty"),
    ]:
        cfg = write_config(tmp_path / needle.replace(" ", "_").replace("=", "_")[:24],
                           endpoint="oss-cn-hangzhou.aliyuncs.com", bucket="b-1",
                           accessKeyId="LTAI5tExample", accessKeySecret="s", **values)
        r = run_cli("check-config", "--config", str(cfg))
        assert r.returncode == 2 and needle in r.stderr, (values, r.stderr)
