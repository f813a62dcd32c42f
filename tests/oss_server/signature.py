"""Checks the signature of an incoming OSS request by recomputing it with the official SDK's signer
(alibabacloud-oss-v2: SignerV4 and SignerV1), as ../shared/OSS-SIGNING.md describes.

Returns None when the request is correctly signed, else an (OSS error code, message) pair.
"""

import datetime
from email.utils import parsedate_to_datetime
from typing import Mapping, Optional, Tuple
from urllib.parse import quote, unquote

from requests.structures import CaseInsensitiveDict

from alibabacloud_oss_v2.credentials import StaticCredentialsProvider
from alibabacloud_oss_v2.signer.v1 import SignerV1
from alibabacloud_oss_v2.signer.v4 import SignerV4
from alibabacloud_oss_v2.types import HttpRequest, SigningContext

Failure = Optional[Tuple[str, str]]


def _requote_query(query: str) -> str:
    """Decode each query key and value and re-encode it the way OSS canonicalizes it."""
    if not query:
        return ""
    pairs = []
    for pair in query.split("&"):
        key, sep, value = pair.partition("=")
        key = quote(unquote(key), safe="")
        if sep:
            pairs.append(key + "=" + quote(unquote(value), safe=""))
        else:
            pairs.append(key)
    return "&".join(pairs)


def _v4_fields(auth: str) -> dict:
    body = auth[len("OSS4-HMAC-SHA256"):].strip()
    fields = {}
    for part in body.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    return fields


def access_key_id_of(auth: str) -> str:
    """The access key id an Authorization header names (V4 credential scope or V1 `OSS id:sig`)."""
    if auth.startswith("OSS4-HMAC-SHA256 "):
        return _v4_fields(auth).get("Credential", "").split("/")[0]
    if auth.startswith("OSS "):
        return auth[4:].split(":", 1)[0]
    return ""


def check(
    method: str,
    bucket: Optional[str],
    key: Optional[str],
    query: str,
    headers: Mapping[str, str],
    access_key_id: str,
    access_key_secret: str,
    region: str,
) -> Failure:
    headers = CaseInsensitiveDict(headers)
    auth = headers.get("Authorization", "")
    if not auth:
        return ("AccessDenied", "The request is not signed.")
    cred = StaticCredentialsProvider(access_key_id, access_key_secret).get_credentials()
    signed = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    url = "http://signing.invalid/" + ("?" + _requote_query(query) if query else "")
    request = HttpRequest(method, url, headers=signed)

    if auth.startswith("OSS4-HMAC-SHA256 "):
        fields = _v4_fields(auth)
        scope = fields.get("Credential", "").split("/")
        if len(scope) != 5 or scope[4] != "aliyun_v4_request":
            return ("InvalidArgument", "Malformed V4 credential scope.")
        if scope[0] != access_key_id:
            return ("InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records.")
        if scope[2] != region:
            return ("SignatureDoesNotMatch", "Region %r in the credential scope is not %r." % (scope[2], region))
        date = headers.get("x-oss-date", "")
        try:
            when = datetime.datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            return ("AccessDenied", "x-oss-date is missing or malformed.")
        extra = {h for h in fields.get("AdditionalHeaders", "").split(";") if h}
        ctx = SigningContext(
            product=scope[3],
            region=scope[2],
            bucket=bucket,
            key=key,
            request=request,
            credentials=cred,
            signing_time=when,
            additional_headers=extra,
        )
        SignerV4().sign(ctx)
        expected = _v4_fields(request.headers["Authorization"]).get("Signature")
        if expected != fields.get("Signature"):
            return ("SignatureDoesNotMatch", "The request signature we calculated does not match (V4).")
        return None

    if auth.startswith("OSS "):
        given_id = auth[4:].split(":", 1)[0]
        if given_id != access_key_id:
            return ("InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records.")
        try:
            when = parsedate_to_datetime(headers.get("Date", ""))
        except (TypeError, ValueError):
            return ("AccessDenied", "Date is missing or malformed.")
        ctx = SigningContext(bucket=bucket, key=key, request=request, credentials=cred, signing_time=when)
        SignerV1().sign(ctx)
        if request.headers["Authorization"] != auth:
            return ("SignatureDoesNotMatch", "The request signature we calculated does not match (V1).")
        return None

    return ("InvalidArgument", "Unknown Authorization scheme.")
