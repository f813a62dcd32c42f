"""The S3 test server: moto's server with S3's upload integrity rules in front of it.

moto stores what it is sent but checks less than S3 does on uploads:
- S3 verifies every `Content-MD5` and `x-amz-checksum-<algorithm>` header against the body and
  refuses a mismatch (BadDigest); moto does not (its own TODO says so).
- Into a bucket with a default Object Lock retention, S3 refuses a PutObject *or an UploadPart* that
  carries neither (its error: "Content-MD5 OR x-amz-checksum- HTTP header is required for Put
  Object requests with Object Lock parameters"). moto checks PutObject only, and accepts only
  Content-MD5 or the SDKs' `x-amz-sdk-checksum-algorithm`, so a client sending a bare
  `x-amz-checksum-crc32c`, which S3 accepts, is refused.

This server applies S3's rules and then hands the request to moto (adding the SDK header moto looks
for once the checksum is verified). It counts, per bucket, the uploads and parts it saw and the
checksums it verified: GET /_s3_rules/stats. Path-style requests only (what our client sends to an
endpoint given in the storage URL). Run: python s3_server.py PORT.
"""

import base64
import binascii
import hashlib
import io
import json
import os
import sys
import threading
from collections import defaultdict
from urllib.parse import parse_qs, unquote

import fastcrc
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3.models import s3_backends
from werkzeug.serving import run_simple

DIGESTS = {
    "content-md5": lambda b: hashlib.md5(b).digest(),
    "x-amz-checksum-crc32c": lambda b: fastcrc.crc32.iscsi(b).to_bytes(4, "big"),
    "x-amz-checksum-crc32": lambda b: binascii.crc32(b).to_bytes(4, "big"),
    "x-amz-checksum-sha1": lambda b: hashlib.sha1(b).digest(),
    "x-amz-checksum-sha256": lambda b: hashlib.sha256(b).digest(),
}
SUBRESOURCES = ("acl", "tagging", "retention", "legal-hold", "object-lock", "versioning", "policy")


def error(start_response, status: str, code: str, message: str):
    body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code><Message>%s</Message></Error>"
            % (code, message)).encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


def default_retention(bucket_name: str) -> bool:
    bucket = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets.get(bucket_name)
    return bool(bucket is not None and bucket.object_lock_enabled and bucket.has_default_lock)


class UploadRules:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.stats = defaultdict(lambda: defaultdict(int))

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/_s3_rules/stats":
            with self.lock:
                body = json.dumps(self.stats).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        bucket, _, key = path.lstrip("/").partition("/")
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if (environ["REQUEST_METHOD"] != "PUT" or not key or any(s in query for s in SUBRESOURCES)
                or "HTTP_X_AMZ_COPY_SOURCE" in environ):
            return self.app(environ, start_response)
        bucket = unquote(bucket)
        kind = "parts" if "partNumber" in query else "puts"
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        sent = {name: environ.get("HTTP_" + name.upper().replace("-", "_")) for name in DIGESTS}
        sent = {name: value for name, value in sent.items() if value}
        # An SDK may send its checksum in a trailer of an aws-chunked body (moto decodes those).
        trailer = environ.get("HTTP_X_AMZ_TRAILER", "").startswith("x-amz-checksum-")
        with self.lock:
            self.stats[bucket][kind] += 1
        for name, value in sent.items():
            if value.strip() != base64.b64encode(DIGESTS[name](body)).decode():
                with self.lock:
                    self.stats[bucket]["bad_digest"] += 1
                return error(start_response, "400 Bad Request", "BadDigest",
                             "The %s you specified did not match the calculated checksum." % name)
        if not sent and not trailer and default_retention(bucket):
            with self.lock:
                self.stats[bucket]["refused_without_checksum"] += 1
            what = "Put Part" if kind == "parts" else "Put Object"
            return error(start_response, "400 Bad Request", "InvalidRequest",
                         "Content-MD5 OR x-amz-checksum- HTTP header is required for %s requests with "
                         "Object Lock parameters" % what)
        if sent:
            with self.lock:
                self.stats[bucket]["verified"] += 1
        algorithm = next((n[len("x-amz-checksum-"):] for n in sent if n.startswith("x-amz-checksum-")), None)
        if algorithm and "HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM" not in environ:
            environ["HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM"] = algorithm.upper()
        return self.app(environ, start_response)


def main() -> None:
    port = int(sys.argv[1])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = UploadRules(DomainDispatcherApplication(create_backend_app))
    run_simple("127.0.0.1", port, app, threaded=True)


if __name__ == "__main__":
    main()
