"""Our storage layer (Rust, through OpenDAL) against real servers: the OSS test server (signatures
checked with the official SDK), moto's S3, and a folder bucket. Every upload is verified by size and
CRC64; failures are one line naming the cause."""

import os
import time

import alibabacloud_oss_v2 as oss
import fastcrc
import pytest

import mongo_oss_backup as mob
from conftest import oss_config, write_config


def payload(size: int, seed: int = 1) -> bytes:
    block = os.urandom(1 << 16) if seed else b"\0" * (1 << 16)
    return (block * (size // len(block) + 1))[:size]


@pytest.mark.parametrize("version", ["4", "1"])
def test_oss_upload_then_sdk_download(tmp_path, oss_server, via_proxy, version):
    bucket = oss_server.add_bucket("ours-up-v" + version)
    cfg = oss_config(tmp_path, oss_server, bucket, oss_signature_version=version)
    data = payload(3 << 20)
    src = tmp_path / "archive.tar.gz"
    src.write_bytes(data)
    store = mob.Storage(config=str(cfg))
    done = store.put_file(str(src), "cycle/full_backup.tar.gz")
    assert done == {"key": "cycle/full_backup.tar.gz", "size": len(data), "crc64": fastcrc.crc64.xz(data)}
    got = oss_server.sdk_client("v" + version).get_object(
        oss.GetObjectRequest(bucket=bucket, key="cycle/full_backup.tar.gz"))
    assert got.body.read() == data
    assert int(got.hash_crc64) == fastcrc.crc64.xz(data)
    assert oss_server.stats()["signatures"].get("V" + version, 0) > 0
    assert src.read_bytes() == data  # the local file is kept as it was


def test_sdk_upload_then_our_download_list_delete(tmp_path, oss_server, via_proxy):
    bucket = oss_server.add_bucket("ours-down")
    data = payload(1 << 20)
    client = oss_server.sdk_client("v4")
    for key in ("c1/full_backup.tar.gz", "c1/inc_backup/oplog_20260101000000.tar.gz", "other.tar.gz"):
        client.put_object(oss.PutObjectRequest(bucket=bucket, key=key, body=data))
    store = mob.Storage(config=str(oss_config(tmp_path, oss_server, bucket)))
    dest = tmp_path / "dl" / "full.tar.gz"
    crc = store.get_file("c1/full_backup.tar.gz", str(dest))
    assert dest.read_bytes() == data and crc == fastcrc.crc64.xz(data)
    listed = store.list("c1/")
    assert [o["key"] for o in listed] == ["c1/full_backup.tar.gz", "c1/inc_backup/oplog_20260101000000.tar.gz"]
    assert all(o["size"] == len(data) for o in listed)
    head = store.head("other.tar.gz")
    assert head["crc64"] == fastcrc.crc64.xz(data) and head["size"] == len(data)
    assert store.head("absent") is None
    store.delete([o["key"] for o in listed] + ["never-existed"])
    assert store.list("c1/") == []
    with pytest.raises(mob.StorageNotFoundError):
        store.get_file("c1/full_backup.tar.gz", str(dest))


def test_listing_is_paginated(tmp_path, oss_server, via_proxy):
    bucket = oss_server.add_bucket("ours-many")
    keys = ["c/inc_backup/oplog_%04d.tar.gz" % i for i in range(1203)]
    oss_server.admin("seed", {"bucket": bucket, "keys": keys, "data": "x"})
    store = mob.Storage(config=str(oss_config(tmp_path, oss_server, bucket)))
    assert [o["key"] for o in store.list("c/")] == keys
    assert oss_server.stats()["ops"]["ListObjectsV2"] >= 2


def test_wrong_secret_is_one_line(tmp_path, oss_server, via_proxy):
    bucket = oss_server.add_bucket("ours-wrong")
    cfg = oss_config(tmp_path, oss_server, bucket, accessKeySecret="not-the-secret")
    src = tmp_path / "f"
    src.write_bytes(b"data")
    with pytest.raises(mob.StorageAuthError) as err:
        mob.Storage(config=str(cfg)).put_file(str(src), "k")
    msg = str(err.value)
    assert "\n" not in msg and "SignatureDoesNotMatch" in msg and "accessKeySecret" in msg
    assert "not-the-secret" not in msg


def test_missing_bucket_is_one_line(tmp_path, oss_server, via_proxy):
    cfg = oss_config(tmp_path, oss_server, "bucket-that-is-not-there")
    src = tmp_path / "f"
    src.write_bytes(b"data")
    with pytest.raises(mob.StorageNotFoundError) as err:
        mob.Storage(config=str(cfg)).put_file(str(src), "k")
    assert str(err.value) == 'bucket "bucket-that-is-not-there" does not exist at %s' % oss_server.endpoint


def test_multipart_survives_503s_and_a_dropped_connection(tmp_path, oss_server, via_proxy):
    bucket = oss_server.add_bucket("ours-multipart")
    cfg = oss_config(tmp_path, oss_server, bucket, upload_concurrency="4")
    data = payload(64 << 20)
    src = tmp_path / "big.tar.gz"
    src.write_bytes(data)
    before = oss_server.stats()
    oss_server.fault("503", count=3, methods=["PUT"])
    oss_server.fault("drop", count=1, methods=["PUT"])
    done = mob.Storage(config=str(cfg)).put_file(str(src), "cycle/full_backup.tar.gz")
    assert done["crc64"] == fastcrc.crc64.xz(data)
    assert oss_server.object_bytes(bucket, "cycle/full_backup.tar.gz") == data
    after = oss_server.stats()
    assert after["faults_served"] - before["faults_served"] == 4
    assert after["ops"]["UploadPart"] - before["ops"].get("UploadPart", 0) >= 8
    assert after["max_parts_in_flight"] >= 2


def test_truncated_download_is_retried_or_refused(tmp_path, oss_server, via_proxy):
    bucket = oss_server.add_bucket("ours-truncate")
    data = payload(2 << 20)
    oss_server.sdk_client("v4").put_object(oss.PutObjectRequest(bucket=bucket, key="k", body=data))
    store = mob.Storage(config=str(oss_config(tmp_path, oss_server, bucket)))
    oss_server.fault("truncate", count=1)
    dest = tmp_path / "k"
    try:
        store.get_file("k", str(dest))
    except mob.MongoOssBackupError as e:
        assert "\n" not in str(e)
        assert not dest.exists()
    else:
        assert dest.read_bytes() == data


def test_endpoint_down_names_the_endpoint(tmp_path, monkeypatch):
    from conftest import free_port
    port = free_port()  # nothing listens there: the server is down
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:%d" % port)
    cfg = write_config(tmp_path, endpoint="http://localhost:%d" % port, bucket="bk-down", accessKeyId="a",
                       accessKeySecret="b", oss_region="cn-hangzhou")
    src = tmp_path / "f"
    src.write_bytes(b"x")
    start = time.time()
    with pytest.raises(mob.StorageUnreachableError) as err:
        mob.Storage(config=str(cfg)).put_file(str(src), "k")
    assert str(err.value) == "cannot reach the storage endpoint http://localhost:%d: connection refused" % port
    assert time.time() - start < 30


def _round_trip(store, tmp_path, size=(9 << 20) + 123):
    data = payload(size)
    src = tmp_path / "up.bin"
    src.write_bytes(data)
    done = store.put_file(str(src), "c/full_backup.tar.gz")
    assert done["size"] == len(data) and done["crc64"] == fastcrc.crc64.xz(data)
    dest = tmp_path / "down.bin"
    assert store.get_file("c/full_backup.tar.gz", str(dest)) == fastcrc.crc64.xz(data)
    assert dest.read_bytes() == data
    assert [o["key"] for o in store.list("c/")] == ["c/full_backup.tar.gz"]
    assert store.head("c/full_backup.tar.gz")["size"] == len(data)
    store.delete(["c/full_backup.tar.gz"])
    assert store.list("c/") == []
    return data


def test_s3_round_trip(tmp_path, moto_s3):
    import boto3
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="mk",
                      aws_secret_access_key="ms")
    s3.create_bucket(Bucket="moto-bk")
    cfg = write_config(tmp_path, storage_url="s3://moto-bk?endpoint=%s&region=us-east-1" % moto_s3,
                       accessKeyId="mk", accessKeySecret="ms")
    store = mob.Storage(config=str(cfg))
    data = _round_trip(store, tmp_path)
    src = tmp_path / "again.bin"
    src.write_bytes(data)
    store.put_file(str(src), "k2")
    assert s3.get_object(Bucket="moto-bk", Key="k2")["Body"].read() == data


def test_folder_round_trip(tmp_path):
    bucket_dir = tmp_path / "bucket"
    cfg = write_config(tmp_path, storage_url="file://%s" % bucket_dir)
    store = mob.Storage(config=str(cfg))
    assert store.list("") == []
    data = _round_trip(store, tmp_path)
    src = tmp_path / "again.bin"
    src.write_bytes(data)
    store.put_file(str(src), "x/y.tar.gz")
    assert (bucket_dir / "x" / "y.tar.gz").read_bytes() == data


TLS_SERVER = r"""
import http.server, socketserver, ssl, sys
port, cert, key, tls = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "tls"
server = socketserver.TCPServer(("127.0.0.1", port), http.server.BaseHTTPRequestHandler)
if tls:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


def self_signed(directory):
    """A self-signed certificate for 127.0.0.1 (cryptography comes with moto)."""
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))


@pytest.mark.parametrize("server, cause", [("tls", "TLS certificate not trusted: unknown issuer"),
                                           ("plain", "no TLS there: an http:// endpoint?")])
def test_https_endpoint_failures_name_the_tls_cause(tmp_path, server, cause):
    """An endpoint whose certificate is not trusted, or that speaks plain HTTP to an https:// URL, is
    named as such in the one error line (it used to read "no response")."""
    import subprocess
    import sys
    from conftest import free_port, port_open, run_cli
    self_signed(tmp_path)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", TLS_SERVER, str(port), str(tmp_path / "cert.pem"),
                             str(tmp_path / "key.pem"), server])
    try:
        deadline = time.time() + 60
        while not port_open(port):
            assert proc.poll() is None and time.time() < deadline, "the test server did not start"
            time.sleep(0.1)
        cfg = write_config(tmp_path / "inst", is_upload_to_oss="1", storage_timeout_seconds="2",
                           storage_url="s3://tls-check?endpoint=https://127.0.0.1:%d&region=us-east-1" % port,
                           accessKeyId="AKIDEXAMPLE", accessKeySecret="secret-example")
        r = run_cli("list", "--config", str(cfg))
        assert r.returncode == 1, r.stdout + r.stderr
        last = r.stderr.strip().splitlines()[-1]
        assert "error: cannot reach the storage endpoint https://127.0.0.1:%d: %s" % (port, cause) in last, r.stderr
    finally:
        proc.kill()
        proc.wait(timeout=30)
