"""The OSS test server itself, with the official SDK (alibabacloud-oss-v2) as the client: round trips
pass with V4 and V1 signatures, and a wrong secret is refused."""

import alibabacloud_oss_v2 as oss
import fastcrc
import pytest

from conftest import OSS_SK


@pytest.mark.parametrize("version", ["v4", "v1"])
def test_sdk_round_trip(oss_server, version):
    bucket = oss_server.add_bucket("sdk-rt-" + version)
    client = oss_server.sdk_client(version)
    data = b"hello oss " * 1000
    put = client.put_object(oss.PutObjectRequest(bucket=bucket, key="dir/a b+c.bin", body=data))
    assert int(put.hash_crc64) == fastcrc.crc64.xz(data)
    got = client.get_object(oss.GetObjectRequest(bucket=bucket, key="dir/a b+c.bin"))
    assert got.body.read() == data
    part = client.get_object(oss.GetObjectRequest(bucket=bucket, key="dir/a b+c.bin", range_header="bytes=5-9"))
    assert part.body.read() == data[5:10]
    head = client.head_object(oss.HeadObjectRequest(bucket=bucket, key="dir/a b+c.bin"))
    assert head.content_length == len(data)
    listed = client.list_objects_v2(oss.ListObjectsV2Request(bucket=bucket, prefix="dir/"))
    assert [o.key for o in listed.contents] == ["dir/a b+c.bin"]
    client.delete_object(oss.DeleteObjectRequest(bucket=bucket, key="dir/a b+c.bin"))
    with pytest.raises(oss.exceptions.OperationError) as err:
        client.head_object(oss.HeadObjectRequest(bucket=bucket, key="dir/a b+c.bin"))
    assert "404" in str(err.value)
    assert oss_server.stats()["signatures"].get(version.upper(), 0) > 0


def test_sdk_listing_pages_and_multipart(oss_server):
    bucket = oss_server.add_bucket("sdk-pages")
    client = oss_server.sdk_client("v4")
    for i in range(7):
        client.put_object(oss.PutObjectRequest(bucket=bucket, key="p/%02d" % i, body=b"x%d" % i))
    keys, token = [], None
    while True:
        page = client.list_objects_v2(oss.ListObjectsV2Request(bucket=bucket, prefix="p/", max_keys=3,
                                                               continuation_token=token))
        keys += [o.key for o in page.contents]
        if not page.is_truncated:
            break
        token = page.next_continuation_token
    assert keys == ["p/%02d" % i for i in range(7)]
    v1 = client.list_objects(oss.ListObjectsRequest(bucket=bucket, delimiter="/"))
    assert [p.prefix for p in v1.common_prefixes] == ["p/"]

    init = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=bucket, key="big"))
    parts, blobs = [], [b"a" * (200 << 10), b"b" * (100 << 10)]
    for n, blob in enumerate(blobs, 1):
        r = client.upload_part(oss.UploadPartRequest(bucket=bucket, key="big", upload_id=init.upload_id,
                                                     part_number=n, body=blob))
        parts.append(oss.UploadPart(part_number=n, etag=r.etag))
    done = client.complete_multipart_upload(oss.CompleteMultipartUploadRequest(
        bucket=bucket, key="big", upload_id=init.upload_id,
        complete_multipart_upload=oss.CompleteMultipartUpload(parts=parts)))
    assert int(done.hash_crc64) == fastcrc.crc64.xz(b"".join(blobs))
    assert oss_server.object_bytes(bucket, "big") == b"".join(blobs)
    client.delete_multiple_objects(oss.DeleteMultipleObjectsRequest(
        bucket=bucket, objects=[oss.DeleteObject(key="p/%02d" % i) for i in range(7)]))
    assert client.list_objects_v2(oss.ListObjectsV2Request(bucket=bucket, prefix="p/")).key_count == 0


@pytest.mark.parametrize("version", ["v4", "v1"])
def test_wrong_secret_is_refused(oss_server, version):
    bucket = oss_server.add_bucket("sdk-wrong-" + version)
    client = oss_server.sdk_client(version, secret=OSS_SK + "x")
    with pytest.raises(oss.exceptions.OperationError) as err:
        client.put_object(oss.PutObjectRequest(bucket=bucket, key="k", body=b"data"))
    assert "SignatureDoesNotMatch" in str(err.value)
    assert not (oss_server.root / bucket / "objects" / "k").exists()


def test_missing_bucket(oss_server):
    client = oss_server.sdk_client("v4")
    with pytest.raises(oss.exceptions.OperationError) as err:
        client.put_object(oss.PutObjectRequest(bucket="no-such-bucket", key="k", body=b"x"))
    assert "NoSuchBucket" in str(err.value)
