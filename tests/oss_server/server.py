"""A real HTTP server speaking the subset of the OSS REST API that mongo-oss-backup uses.

Objects live on disk. Every request's signature is recomputed with the official SDK's signer
(signature.py) and refused when wrong. Requests reach it either directly (path style,
http://127.0.0.1:PORT/bucket/key) or, virtual-hosted, through it acting as the client's HTTP proxy
(absolute-form request lines such as `PUT http://bucket.localhost:PORT/key HTTP/1.1`).

Test control, on http://127.0.0.1:PORT/__admin/... (never signed, never faulted):
  POST /__admin/faults       {"mode": "500"|"503"|"drop"|"stall"|"truncate"|"delay", "count": N,
                              "methods": ["PUT", ...] (optional), "seconds": S (stall, delay)}
                             (delay: wait S seconds, then serve the request normally)
                             "first_upload": true (optional): only the parts of the first multipart
                             upload the fault meets (a later upload of the same key goes through)
                             "key_suffix": ".tar.gz" (optional): only requests for keys ending so
  POST /__admin/ignore_sse   {"ignore": true}: store writes unencrypted whatever they ask for
  POST /__admin/worm         {"bucket": ..., "days": N}: a locked retention policy (GetBucketWorm answers
                             it; deleting an object younger than N days is refused); "days": null removes it
  POST /__admin/age          {"bucket": ..., "prefix": ..., "days": D}: objects under prefix were last
                             modified D days earlier than they were
  POST /__admin/limited_key  {"access_key_id": ..., "access_key_secret": ...}: a second key that may put,
                             get and list but whose deletes are refused (AccessDenied)
  POST /__admin/faults       {"clear": true}  (drop every pending fault)
  POST /__admin/credentials  {"access_key_id": ..., "access_key_secret": ...}
  POST /__admin/buckets      {"name": ...}
  POST /__admin/seed         {"bucket": ..., "keys": [...], "data": "..."}  (many objects at once)
  GET  /__admin/stats        request counts, signature versions seen, most parts in flight at once,
                             server-side encryption asked for per operation, STS tokens used
  POST /__admin/sts          {"role": NAME, "ttl": SECONDS, "skew": SECONDS}: the metadata service's
                             role, the lifetime of the temporary credentials it hands out, and how far
                             the OSS side's clock runs ahead of it (tokens die that much earlier)
  POST /__admin/sts/issue    {"ttl": SECONDS} → {"access_key_id", "access_key_secret", "security_token"}

ECS instance metadata service (IMDS, as 100.100.100.200 serves it), on the same port:
  PUT  /latest/api/token                                   a session token (IMDSv2)
  GET  /latest/meta-data/ram/security-credentials/         the role name
  GET  /latest/meta-data/ram/security-credentials/<role>   fresh temporary credentials with their
                                                           Expiration; the OSS side accepts them, with
                                                           their x-oss-security-token, until then

Run: python -m tests.oss_server --port 0 --root DIR --bucket NAME [--bucket ...]
     (prints "oss_server listening on 127.0.0.1:PORT" once ready)
"""

import argparse
import datetime
import hashlib
import json
import os
import shutil
import socket
import sys
import threading
import time
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

import fastcrc

try:
    from . import signature
except ImportError:  # run as a script
    import signature  # type: ignore

CHUNK = 1 << 20


def crc64(data: bytes, previous: Optional[int] = None) -> int:
    return fastcrc.crc64.xz(data, previous) if previous is not None else fastcrc.crc64.xz(data)


class Obj:
    sse: Optional[Dict[str, str]] = None  # server-side encryption headers it was stored with

    def __init__(self, path: str, size: int, etag: str, crc: int, mtime: float):
        self.path, self.size, self.etag, self.crc, self.mtime = path, size, etag, crc, mtime


class Store:
    """Buckets of objects on disk, indexed in memory."""

    def __init__(self, root: str):
        self.root = root
        self.lock = threading.Lock()
        self.buckets: Dict[str, Dict[str, Obj]] = {}
        self.uploads: Dict[str, Tuple[str, str]] = {}  # upload id -> (bucket, key)
        self.upload_sse: Dict[str, Dict[str, str]] = {}  # upload id -> encryption asked at initiation
        self.upload_token: Dict[str, str] = {}  # upload id -> access key id it was initiated with

    def add_bucket(self, name: str) -> None:
        with self.lock:
            os.makedirs(os.path.join(self.root, name, "objects"), exist_ok=True)
            os.makedirs(os.path.join(self.root, name, "uploads"), exist_ok=True)
            self.buckets.setdefault(name, {})

    def object_path(self, bucket: str, key: str) -> str:
        return os.path.join(self.root, bucket, "objects", quote(key, safe=""))

    def upload_dir(self, bucket: str, upload_id: str) -> str:
        return os.path.join(self.root, bucket, "uploads", upload_id)

    def commit(self, bucket: str, key: str, tmp: str, etag: str, crc: int) -> Obj:
        path = self.object_path(bucket, key)
        os.replace(tmp, path)
        obj = Obj(path, os.path.getsize(path), etag, crc, time.time())
        with self.lock:
            self.buckets[bucket][key] = obj
        return obj


class Faults:
    """Faults injected into the next N matching requests."""

    def __init__(self):
        self.lock = threading.Lock()
        self.plan: List[dict] = []

    def add(self, spec: dict) -> None:
        with self.lock:
            spec = dict(spec, count=int(spec.get("count", 1)))
            if spec.get("mode") == "truncate" and not spec.get("methods"):
                spec["methods"] = ["GET"]  # only a body being sent can be cut short
            self.plan.append(spec)

    def take(self, method: str, params: dict, key: str = "") -> Optional[dict]:
        with self.lock:
            for spec in self.plan:
                if spec["count"] <= 0 or (spec.get("methods") and method not in spec["methods"]):
                    continue
                if not key.endswith(spec.get("key_suffix", "")):
                    continue
                if spec.get("first_upload"):
                    upload = params.get("uploadId") if "partNumber" in params else None
                    if upload is None or spec.setdefault("upload_id", upload) != upload:
                        continue
                spec["count"] -= 1
                return dict(spec)
        return None


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops: Dict[str, int] = {}
        self.signatures: Dict[str, int] = {}
        self.rejected = 0
        self.parts_in_flight = 0
        self.max_parts_in_flight = 0
        self.faults_served = 0
        self.sse: Dict[str, int] = {}  # "<operation> <algorithm or none>" → count
        self.sts_tokens = set()  # security tokens seen on accepted requests
        self.uploads_outliving_their_token = 0  # multipart uploads completed after the token they began with expired
        self.metadata_credentials = 0  # temporary credentials the metadata service handed out

    def count(self, table: Dict[str, int], name: str) -> None:
        with self.lock:
            table[name] = table.get(name, 0) + 1

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "ops": dict(self.ops),
                "signatures": dict(self.signatures),
                "rejected": self.rejected,
                "max_parts_in_flight": self.max_parts_in_flight,
                "faults_served": self.faults_served,
                "sse": dict(self.sse),
                "sts_tokens_used": len(self.sts_tokens),
                "uploads_outliving_their_token": self.uploads_outliving_their_token,
                "metadata_credentials": self.metadata_credentials,
            }


class OssServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, root: str, access_key_id: str, access_key_secret: str, region: str):
        super().__init__(addr, Handler)
        self.store = Store(root)
        self.faults = Faults()
        self.stats = Stats()
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.region = region
        # Temporary (STS) credentials: access key id → (secret, security token, expiry epoch).
        self.sts: Dict[str, Tuple[str, str, float]] = {}
        self.sts_lock = threading.Lock()
        self.metadata_role, self.metadata_ttl = "backup-role", 3600.0
        self.clock_skew = 0.0
        self.ignore_sse = False
        self.worm: Dict[str, int] = {}  # bucket -> retention days
        self.limited_keys: Dict[str, str] = {}  # access key id -> secret, without delete rights

    def issue_sts(self, ttl: float) -> dict:
        ak = "STS.%s" % uuid.uuid4().hex[:20]
        secret, token = uuid.uuid4().hex, uuid.uuid4().hex + uuid.uuid4().hex
        expiry = time.time() + ttl
        with self.sts_lock:
            self.sts[ak] = (secret, token, expiry)
        return {"access_key_id": ak, "access_key_secret": secret, "security_token": token, "expiry": expiry}

    def credentials_for(self, access_key_id: str, token: Optional[str]):
        """The secret to check a request's signature with, or an (OSS error code, message) refusal."""
        with self.sts_lock:
            sts = self.sts.get(access_key_id)
        if access_key_id in self.limited_keys:
            return self.limited_keys[access_key_id], None
        if sts is None:
            return self.access_key_secret, None
        secret, expected, expiry = sts
        if token != expected:
            return secret, ("InvalidAccessKeyId", "The security token you provided is invalid.")
        if time.time() + self.clock_skew >= expiry:
            return secret, ("InvalidAccessKeyId", "The security token you provided has expired.")
        return secret, None


def _xml(tag: str, children: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<%s>%s</%s>' % (tag, children, tag)).encode()


def _el(name: str, value) -> str:
    return "<%s>%s</%s>" % (name, escape(str(value)), name)


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: OssServer

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    # -- plumbing ---------------------------------------------------------------------------
    def _target(self) -> Tuple[str, str, str]:
        """(host, path, query) of the request, for origin-form and absolute-form lines."""
        if self.path.startswith("http://") or self.path.startswith("https://"):
            parts = urlsplit(self.path)
            return parts.netloc, parts.path or "/", parts.query
        path, _, query = self.path.partition("?")
        return self.headers.get("Host", ""), path, query

    def _read_body_chunks(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return
                remaining = size
                while remaining:
                    data = self.rfile.read(min(CHUNK, remaining))
                    remaining -= len(data)
                    yield data
                self.rfile.readline()
        remaining = int(self.headers.get("Content-Length", "0") or 0)
        while remaining > 0:
            data = self.rfile.read(min(CHUNK, remaining))
            if not data:
                raise ConnectionError("client closed the connection mid-body")
            remaining -= len(data)
            yield data

    def _drain(self) -> None:
        for _ in self._read_body_chunks():
            pass

    def _send(self, status: int, body: bytes = b"", headers: Optional[dict] = None, head: bool = False):
        self.send_response(status)
        self.send_header("x-oss-request-id", uuid.uuid4().hex.upper())
        self.send_header("Date", formatdate(usegmt=True))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        if body and "Content-Type" not in (headers or {}):
            self.send_header("Content-Type", "application/xml")
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, **extra) -> None:
        fields = _el("Code", code) + _el("Message", message) + _el("RequestId", uuid.uuid4().hex)
        for k, v in extra.items():
            fields += _el(k, v)
        self._send(status, _xml("Error", fields), {"x-oss-ec": "0000-00000000"},
                   head=self.command == "HEAD")

    # -- dispatch ---------------------------------------------------------------------------
    def do_GET(self):
        self._handle()

    def do_HEAD(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_DELETE(self):
        self._handle()

    def _handle(self):
        host, path, query = self._target()
        if path.startswith("/__admin/"):
            return self._admin(path, query)
        params = dict(parse_qsl(query, keep_blank_values=True))
        bucket, key = self._bucket_and_key(host, path)
        if path.startswith("/latest/"):
            return self._metadata(path)
        fault = self.server.faults.take(self.command, params, key or "")
        delay = 0.0
        if fault and fault["mode"] == "delay":
            delay, fault = float(fault.get("seconds", 1)), None
        if fault and fault["mode"] != "truncate":
            return self._serve_fault(fault)
        auth = self.headers.get("Authorization", "")  # email.message lookups ignore case
        given_id = signature.access_key_id_of(auth)
        token = self.headers.get("x-oss-security-token")
        secret, failure = self.server.credentials_for(given_id, token)
        own = given_id.startswith("STS.") or given_id in self.server.limited_keys
        expected_id = given_id if own else self.server.access_key_id
        self.limited = given_id in self.server.limited_keys
        failure = failure or signature.check(
            self.command, bucket, key or None, query, dict(self.headers.items()),
            expected_id, secret, self.server.region)
        if not failure and token:
            with self.server.stats.lock:
                self.server.stats.sts_tokens.add(token)
        self.server.stats.count(self.server.stats.signatures, "V4" if auth.startswith("OSS4") else "V1")
        if failure:
            with self.server.stats.lock:
                self.server.stats.rejected += 1
            sys.stderr.write("rejected %s %s: %s %s (Authorization: %s)\n" % (
                self.command, self.path, failure[0], failure[1], auth.split("Signature")[0]))
            sys.stderr.flush()
            self._drain()
            return self._error(403, failure[0], failure[1])
        time.sleep(delay)  # a slow request: checked on arrival, served late
        if not bucket or bucket not in self.server.store.buckets:
            self._drain()
            return self._error(404, "NoSuchBucket", "The specified bucket does not exist.", BucketName=bucket or "")
        try:
            self._operation(bucket, key, params, fault)
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True

    def _bucket_and_key(self, host: str, path: str) -> Tuple[Optional[str], str]:
        hostname = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        raw = unquote(path)
        if hostname.endswith(".localhost"):
            return hostname[: -len(".localhost")], raw.lstrip("/")
        bucket, _, key = raw.lstrip("/").partition("/")
        return (bucket or None), key

    def _metadata(self, path: str) -> None:
        """The ECS instance metadata service's RAM-role credentials (IMDSv2 token optional)."""
        self._drain()
        server = self.server
        if path == "/latest/api/token" and self.command == "PUT":
            return self._send(200, uuid.uuid4().hex.encode(), {"Content-Type": "text/plain"})
        base = "/latest/meta-data/ram/security-credentials/"
        if path == base:
            return self._send(200, server.metadata_role.encode(), {"Content-Type": "text/plain"})
        if path == base + server.metadata_role:
            cred = server.issue_sts(server.metadata_ttl)
            with server.stats.lock:
                server.stats.metadata_credentials += 1
            body = {
                "Code": "Success",
                "AccessKeyId": cred["access_key_id"],
                "AccessKeySecret": cred["access_key_secret"],
                "SecurityToken": cred["security_token"],
                "Expiration": _iso(cred["expiry"]).replace(".000Z", "Z"),
                "LastUpdated": _iso(time.time()).replace(".000Z", "Z"),
            }
            return self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
        self._send(404, b"Not Found", {"Content-Type": "text/plain"})

    def _serve_fault(self, fault: dict) -> None:
        with self.server.stats.lock:
            self.server.stats.faults_served += 1
        mode = fault["mode"]
        if mode in ("500", "503"):
            self._drain()
            code = "InternalError" if mode == "500" else "ServiceUnavailable"
            return self._error(int(mode), code, "Injected fault.")
        if mode == "stall":
            time.sleep(float(fault.get("seconds", 30)))
        # drop (and the end of a stall): close without answering
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- test control -----------------------------------------------------------------------
    def _admin(self, path: str, query: str) -> None:
        body = b"".join(self._read_body_chunks())
        spec = json.loads(body or b"{}")
        if path == "/__admin/faults" and spec.get("clear"):
            with self.server.faults.lock:
                self.server.faults.plan.clear()
        elif path == "/__admin/faults":
            self.server.faults.add(spec)
        elif path == "/__admin/credentials":
            self.server.access_key_id = spec.get("access_key_id", self.server.access_key_id)
            self.server.access_key_secret = spec.get("access_key_secret", self.server.access_key_secret)
        elif path == "/__admin/worm":
            if spec.get("days") is None:
                self.server.worm.pop(spec["bucket"], None)
            else:
                self.server.worm[spec["bucket"]] = int(spec["days"])
        elif path == "/__admin/age":
            with self.server.store.lock:
                for key, obj in self.server.store.buckets[spec["bucket"]].items():
                    if key.startswith(spec.get("prefix", "")):
                        obj.mtime -= float(spec["days"]) * 86400
        elif path == "/__admin/limited_key":
            self.server.limited_keys[spec["access_key_id"]] = spec["access_key_secret"]
        elif path == "/__admin/ignore_sse":
            self.server.ignore_sse = bool(spec.get("ignore", True))
        elif path == "/__admin/sts":
            self.server.metadata_role = spec.get("role", self.server.metadata_role)
            self.server.metadata_ttl = float(spec.get("ttl", self.server.metadata_ttl))
            self.server.clock_skew = float(spec.get("skew", 0))
        elif path == "/__admin/sts/issue":
            cred = self.server.issue_sts(float(spec.get("ttl", 3600)))
            return self._send(200, json.dumps(cred).encode(), {"Content-Type": "application/json"})
        elif path == "/__admin/buckets":
            self.server.store.add_bucket(spec["name"])
        elif path == "/__admin/seed":
            store, data = self.server.store, spec.get("data", "").encode()
            for key in spec["keys"]:
                tmp = store.object_path(spec["bucket"], key) + ".seed"
                with open(tmp, "wb") as f:
                    f.write(data)
                store.commit(spec["bucket"], key, tmp, hashlib.md5(data).hexdigest().upper(), crc64(data))
        elif path == "/__admin/stats":
            return self._send(200, json.dumps(self.server.stats.snapshot()).encode(),
                              {"Content-Type": "application/json"})
        else:
            return self._send(404)
        self._send(200, b"{}", {"Content-Type": "application/json"})

    # -- OSS operations ---------------------------------------------------------------------
    def _operation(self, bucket: str, key: str, params: dict, fault: Optional[dict]) -> None:
        store, stats, cmd = self.server.store, self.server.stats, self.command
        deleting = cmd == "DELETE" and "uploadId" not in params or (cmd == "POST" and "delete" in params and not key)
        if deleting and self.limited:
            self._drain()
            return self._error(403, "AccessDenied", "You have no right to access this object because of bucket acl.")
        if not key and cmd == "GET" and "worm" in params:
            stats.count(stats.ops, "GetBucketWorm")
            self._drain()
            days = self.server.worm.get(bucket)
            if days is None:
                return self._error(404, "NoSuchWORMConfiguration", "The WORM Configuration does not exist.")
            body = _el("WormId", "1666E2CFB2B3418" + bucket) + _el("State", "Locked")
            body += _el("RetentionPeriodInDays", days) + _el("CreationDate", "2026-01-01T00:00:00")
            return self._send(200, _xml("WormConfiguration", body))
        if not key:
            if cmd == "GET":
                stats.count(stats.ops, "ListObjectsV2" if params.get("list-type") == "2" else "ListObjects")
                return self._list(bucket, params)
            if cmd == "POST" and "delete" in params:
                stats.count(stats.ops, "DeleteMultipleObjects")
                return self._delete_multiple(bucket)
            self._drain()
            return self._error(405, "MethodNotAllowed", "Unsupported bucket operation.")
        if cmd == "PUT" and "partNumber" in params:
            stats.count(stats.ops, "UploadPart")
            return self._upload_part(bucket, key, params)
        if cmd == "PUT":
            stats.count(stats.ops, "PutObject")
            return self._put(bucket, key)
        if cmd in ("GET", "HEAD"):
            stats.count(stats.ops, "GetObject" if cmd == "GET" else "HeadObject")
            return self._get(bucket, key, head=cmd == "HEAD", truncate=fault is not None)
        if cmd == "POST" and "uploads" in params:
            stats.count(stats.ops, "InitiateMultipartUpload")
            return self._initiate(bucket, key)
        if cmd == "POST" and "uploadId" in params:
            stats.count(stats.ops, "CompleteMultipartUpload")
            return self._complete(bucket, key, params["uploadId"])
        if cmd == "DELETE" and "uploadId" in params:
            stats.count(stats.ops, "AbortMultipartUpload")
            shutil.rmtree(store.upload_dir(bucket, params["uploadId"]), ignore_errors=True)
            return self._send(204)
        if cmd == "DELETE":
            stats.count(stats.ops, "DeleteObject")
            if self._protected(bucket, key):
                return self._error(409, "ObjectImmutable", "The object is protected by the bucket's WORM policy.")
            self._delete_key(bucket, key)
            return self._send(204)
        self._drain()
        self._error(405, "MethodNotAllowed", "Unsupported object operation.")

    def _receive(self, dest: str) -> Tuple[int, str, int]:
        md5, crc, size = hashlib.md5(), None, 0
        with open(dest, "wb") as f:
            for data in self._read_body_chunks():
                f.write(data)
                md5.update(data)
                crc = crc64(data, crc)
                size += len(data)
        return size, md5.hexdigest().upper(), crc if crc is not None else 0

    def _sse_asked(self, operation: str) -> Dict[str, str]:
        """The server-side encryption headers of a write, counted per operation."""
        asked = {k: self.headers[k] for k in ("x-oss-server-side-encryption",
                                              "x-oss-server-side-encryption-key-id") if self.headers.get(k)}
        algorithm = asked.get("x-oss-server-side-encryption", "none")
        self.server.stats.count(self.server.stats.sse, "%s %s" % (operation, algorithm))
        return {} if self.server.ignore_sse else asked

    def _put(self, bucket: str, key: str) -> None:
        store = self.server.store
        sse = self._sse_asked("PutObject")
        tmp = store.object_path(bucket, key) + ".tmp-" + uuid.uuid4().hex
        _, etag, crc = self._receive(tmp)
        store.commit(bucket, key, tmp, etag, crc).sse = sse
        self._send(200, b"", dict(sse, **{"ETag": '"%s"' % etag, "x-oss-hash-crc64ecma": str(crc)}))

    def _get(self, bucket: str, key: str, head: bool, truncate: bool) -> None:
        obj = self.server.store.buckets[bucket].get(key)
        if obj is None:
            return self._error(404, "NoSuchKey", "The specified key does not exist.", Key=key)
        start, end, status = 0, obj.size - 1, 200
        headers = {
            **(obj.sse or {}),
            "ETag": '"%s"' % obj.etag,
            "x-oss-hash-crc64ecma": str(obj.crc),
            "Last-Modified": formatdate(obj.mtime, usegmt=True),
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
        }
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and obj.size > 0:
            first, _, last = rng[6:].partition("-")
            if first:
                start, end = int(first), min(int(last) if last else obj.size - 1, obj.size - 1)
            else:
                start, end = max(obj.size - int(last), 0), obj.size - 1
            if start > end:
                return self._error(416, "InvalidRange", "The requested range cannot be satisfied.")
            status = 206
            headers["Content-Range"] = "bytes %d-%d/%d" % (start, end, obj.size)
        length = end - start + 1 if obj.size else 0
        headers["Content-Length"] = str(length)
        self._send(status, b"", headers)
        if head:
            return
        to_send = length // 2 if truncate else length
        with open(obj.path, "rb") as f:
            f.seek(start)
            while to_send > 0:
                data = f.read(min(CHUNK, to_send))
                if not data:
                    break
                self.wfile.write(data)
                to_send -= len(data)
        if truncate:
            with self.server.stats.lock:
                self.server.stats.faults_served += 1
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    def _protected(self, bucket: str, key: str) -> bool:
        """Whether the bucket's retention policy still protects the object."""
        days = self.server.worm.get(bucket)
        obj = self.server.store.buckets[bucket].get(key)
        return days is not None and obj is not None and time.time() < obj.mtime + days * 86400

    def _delete_key(self, bucket: str, key: str) -> None:
        with self.server.store.lock:
            obj = self.server.store.buckets[bucket].pop(key, None)
        if obj is not None:
            try:
                os.remove(obj.path)
            except FileNotFoundError:
                pass

    def _delete_multiple(self, bucket: str) -> None:
        root = ET.fromstring(b"".join(self._read_body_chunks()))
        quiet = (root.findtext("Quiet") or "false").lower() == "true"
        keys = [o.findtext("Key") or "" for o in root.findall("Object")]
        if any(self._protected(bucket, k) for k in keys):
            return self._error(409, "ObjectImmutable", "The object is protected by the bucket's WORM policy.")
        for key in keys:
            self._delete_key(bucket, key)
        body = "" if quiet else "".join("<Deleted>%s</Deleted>" % _el("Key", k) for k in keys)
        self._send(200, _xml("DeleteResult", body))

    def _list(self, bucket: str, p: dict) -> None:
        self._drain()
        v2 = p.get("list-type") == "2"
        prefix, delimiter = p.get("prefix", ""), p.get("delimiter", "")
        max_keys = int(p.get("max-keys", "1000") or 1000)
        after = p.get("continuation-token", "") or p.get("start-after", "") if v2 else p.get("marker", "")
        with self.server.store.lock:
            items = sorted(self.server.store.buckets[bucket].items())
        contents, prefixes, last, truncated = [], [], "", False
        for k, obj in items:
            if not k.startswith(prefix) or (after and k <= after):
                continue
            if delimiter and delimiter in k[len(prefix):]:
                common = k[: len(prefix) + k[len(prefix):].index(delimiter) + len(delimiter)]
                if common in prefixes or (after and common <= after):
                    continue
                entry = ("prefix", common)
            else:
                entry = ("key", k, obj)
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            if entry[0] == "prefix":
                prefixes.append(entry[1])
                last = entry[1]
            else:
                contents.append((k, obj))
                last = k
        body = _el("Name", bucket) + _el("Prefix", prefix) + _el("MaxKeys", max_keys)
        body += _el("Delimiter", delimiter) + _el("IsTruncated", "true" if truncated else "false")
        if v2:
            body += _el("KeyCount", len(contents) + len(prefixes))
            if truncated:
                body += _el("NextContinuationToken", last)
        else:
            body += _el("Marker", after)
            if truncated:
                body += _el("NextMarker", last)
        for k, obj in contents:
            body += "<Contents>%s%s%s%s%s</Contents>" % (
                _el("Key", k), _el("LastModified", _iso(obj.mtime)), _el("ETag", '"%s"' % obj.etag),
                _el("Size", obj.size), _el("StorageClass", "Standard"))
        for cp in prefixes:
            body += "<CommonPrefixes>%s</CommonPrefixes>" % _el("Prefix", cp)
        self._send(200, _xml("ListBucketResult", body))

    def _initiate(self, bucket: str, key: str) -> None:
        self._drain()
        upload_id = uuid.uuid4().hex.upper()
        os.makedirs(self.server.store.upload_dir(bucket, upload_id))
        self.server.store.uploads[upload_id] = (bucket, key)
        # OSS takes the encryption at initiation and applies it to every part.
        self.server.store.upload_sse[upload_id] = self._sse_asked("InitiateMultipartUpload")
        self.server.store.upload_token[upload_id] = signature.access_key_id_of(self.headers.get("Authorization", ""))
        body = _el("Bucket", bucket) + _el("Key", key) + _el("UploadId", upload_id)
        self._send(200, _xml("InitiateMultipartUploadResult", body))

    def _upload_part(self, bucket: str, key: str, params: dict) -> None:
        store, stats = self.server.store, self.server.stats
        if store.uploads.get(params.get("uploadId", "")) != (bucket, key):
            self._drain()
            return self._error(404, "NoSuchUpload", "The specified upload does not exist.")
        with stats.lock:
            stats.parts_in_flight += 1
            stats.max_parts_in_flight = max(stats.max_parts_in_flight, stats.parts_in_flight)
        try:
            part = os.path.join(store.upload_dir(bucket, params["uploadId"]), "%05d" % int(params["partNumber"]))
            tmp = part + ".tmp"
            _, etag, crc = self._receive(tmp)
            os.replace(tmp, part)
        finally:
            with stats.lock:
                stats.parts_in_flight -= 1
        sse = store.upload_sse.get(params["uploadId"], {})
        self._send(200, b"", dict(sse, **{"ETag": '"%s"' % etag, "x-oss-hash-crc64ecma": str(crc)}))

    def _complete(self, bucket: str, key: str, upload_id: str) -> None:
        store = self.server.store
        body = b"".join(self._read_body_chunks())
        if store.uploads.get(upload_id) != (bucket, key):
            return self._error(404, "NoSuchUpload", "The specified upload does not exist.")
        wanted = []
        for part in ET.fromstring(body).findall("Part"):
            wanted.append((int(part.findtext("PartNumber")), (part.findtext("ETag") or "").strip('"')))
        updir = store.upload_dir(bucket, upload_id)
        tmp = store.object_path(bucket, key) + ".tmp-" + upload_id
        digests, crc = b"", None
        with open(tmp, "wb") as out:
            for number, etag in sorted(wanted):
                path = os.path.join(updir, "%05d" % number)
                if not os.path.exists(path):
                    os.remove(tmp)
                    return self._error(400, "InvalidPart", "Part %d was not uploaded." % number)
                md5 = hashlib.md5()
                with open(path, "rb") as f:
                    while True:
                        data = f.read(CHUNK)
                        if not data:
                            break
                        out.write(data)
                        md5.update(data)
                        crc = crc64(data, crc)
                if md5.hexdigest().upper() != etag.upper():
                    os.remove(tmp)
                    return self._error(400, "InvalidPart", "ETag of part %d does not match." % number)
                digests += md5.digest()
        etag = "%s-%d" % (hashlib.md5(digests).hexdigest().upper(), len(wanted))
        sse = store.upload_sse.pop(upload_id, {})
        began_with = self.server.sts.get(store.upload_token.pop(upload_id, ""))
        if began_with and time.time() + self.server.clock_skew >= began_with[2]:
            with self.server.stats.lock:
                self.server.stats.uploads_outliving_their_token += 1
        store.commit(bucket, key, tmp, etag, crc or 0).sse = sse
        shutil.rmtree(updir, ignore_errors=True)
        store.uploads.pop(upload_id, None)
        result = _el("Bucket", bucket) + _el("Key", key) + _el("ETag", '"%s"' % etag)
        self._send(200, _xml("CompleteMultipartUploadResult", result),
                   dict(sse, **{"x-oss-hash-crc64ecma": str(crc or 0)}))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="OSS test server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--root", required=True)
    ap.add_argument("--bucket", action="append", default=[])
    ap.add_argument("--access-key-id", default="test-ak")
    ap.add_argument("--access-key-secret", default="test-sk")
    ap.add_argument("--region", default="cn-hangzhou")
    args = ap.parse_args(argv)
    # The secret may come from the environment so that it is not in this process's argv.
    secret = os.environ.get("OSS_SERVER_SECRET", args.access_key_secret)
    server = OssServer((args.host, args.port), args.root, args.access_key_id, secret, args.region)
    for b in args.bucket:
        server.store.add_bucket(b)
    print("oss_server listening on %s:%d" % server.server_address[:2], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
