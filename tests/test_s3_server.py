"""The S3 test server (tests/s3_server.py: moto behind S3's upload integrity rules), checked with
boto3 as the client and against CRC-32C's published check value, so that what it accepts from our
uploads means what S3 would accept."""

import base64
import hashlib
import urllib.error
import urllib.request

import pytest

from conftest import s3_rule_stats


def locked_bucket(endpoint, name):
    import boto3
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="mk",
                      aws_secret_access_key="ms")
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}})
    return s3


def raw_put(url, body, **headers):
    headers.setdefault("Content-Type", "application/octet-stream")
    req = urllib.request.Request(url, data=body, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, b""
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_sdk_uploads_into_a_locked_bucket(moto_s3):
    import botocore
    from botocore.config import Config
    s3 = locked_bucket(moto_s3, "rules-sdk")
    # The SDK's default (a CRC32 on every upload) is accepted and stored.
    s3.put_object(Bucket="rules-sdk", Key="default", Body=b"x" * 1000)
    assert s3.get_object(Bucket="rules-sdk", Key="default")["Body"].read() == b"x" * 1000
    import boto3
    # A client that sends checksums only where an operation requires them.
    bare = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="mk",
                        aws_secret_access_key="ms",
                        config=Config(request_checksum_calculation="when_required", retries={"total_max_attempts": 1}))
    with pytest.raises(botocore.exceptions.ClientError, match="Content-MD5 OR x-amz-checksum- HTTP header is "
                                                             "required for Put Object requests"):
        bare.put_object(Bucket="rules-sdk", Key="none", Body=b"y")
    upload = bare.create_multipart_upload(Bucket="rules-sdk", Key="parts")["UploadId"]
    with pytest.raises(botocore.exceptions.ClientError, match="required for Put Part requests"):
        bare.upload_part(Bucket="rules-sdk", Key="parts", UploadId=upload, PartNumber=1, Body=b"p" * 100)
    md5 = base64.b64encode(hashlib.md5(b"p" * 100).digest()).decode()
    bare.upload_part(Bucket="rules-sdk", Key="parts", UploadId=upload, PartNumber=1, Body=b"p" * 100,
                     ContentMD5=md5)
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(botocore.exceptions.ClientError, match="BadDigest"):
        bare.put_object(Bucket="rules-sdk", Key="wrong", Body=b"z", ContentMD5=wrong)
    # A bucket without Object Lock takes an upload without checksum, as S3 does.
    bare.create_bucket(Bucket="rules-plain")
    bare.put_object(Bucket="rules-plain", Key="none", Body=b"y")
    stats = s3_rule_stats(moto_s3)
    assert stats["rules-sdk"]["refused_without_checksum"] == 2 and stats["rules-sdk"]["bad_digest"] == 1, stats


def test_crc32c_is_checked_against_its_check_value(moto_s3):
    """A bare x-amz-checksum-crc32c (what our S3 uploads send) is enough for S3; the server checks its
    value: CRC-32C of b"123456789" is 0xE3069283."""
    s3 = locked_bucket(moto_s3, "rules-crc")
    url = moto_s3 + "/rules-crc/"
    good = base64.b64encode(bytes.fromhex("e3069283")).decode()
    assert raw_put(url + "good", b"123456789", **{"x-amz-checksum-crc32c": good})[0] == 200
    assert s3.get_object(Bucket="rules-crc", Key="good")["Body"].read() == b"123456789"
    status, body = raw_put(url + "bad", b"123456780", **{"x-amz-checksum-crc32c": good})
    assert status == 400 and b"BadDigest" in body
    status, body = raw_put(url + "none", b"123456789")
    assert status == 400 and b"Object Lock parameters" in body
