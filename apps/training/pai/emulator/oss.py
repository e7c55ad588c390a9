"""The PAI emulator's OSS: path-style object storage that answers the requests Alibaba's ``alibabacloud-oss-v2``
SDK sends, with the V4 signature checked, on a loopback port of its own.

=========================================  ==========================
PUT     /<bucket>/<key>                    PutObject
GET     /<bucket>/<key>                    GetObject
HEAD    /<bucket>/<key>                    HeadObject
DELETE  /<bucket>/<key>                    DeleteObject
POST    /<bucket>/<key>?uploads            InitiateMultipartUpload
PUT     /<bucket>/<key>?partNumber&uploadId  UploadPart
POST    /<bucket>/<key>?uploadId           CompleteMultipartUpload
DELETE  /<bucket>/<key>?uploadId           AbortMultipartUpload
GET     /<bucket>/?list-type=2             ListObjectsV2
GET     /<bucket>/?uploads                 ListMultipartUploads
=========================================  ==========================

Errors are OSS's XML (``<Error><Code>…<Message>…<RequestId>…<HostId>…<EC>…``) with ``x-oss-request-id`` and
``x-oss-ec`` headers. The signature (``OSS4-HMAC-SHA256``) is rebuilt from what arrived, following Alibaba's
documented algorithm, and the Host must name this server (when the client signed ``host`` among its
AdditionalHeaders, the signature covers it too). An object exists only once its whole body arrived (a PUT) or
its upload was completed: a reader never sees half of one. Each object answers with its CRC64-ECMA
(``x-oss-hash-crc64ecma``) and an MD5 ETag, as OSS does, so the SDK's integrity checks run for real.

Faults (:class:`OssFaults`): N error answers, a body cut off after some bytes (the connection is dropped),
and permissions refused under a key prefix, either to Mlab's credentials or to the job's role.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from .label import LABEL, LOG_PREFIX

logger = logging.getLogger("apps.training.pai.emulator.oss")

SERVER_HEADER = "Mlab-OSS-Emulator/1.0 (an emulator of Alibaba Cloud OSS, not OSS)"
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)
BLOCK = 1024 * 1024
_AUTH_RE = re.compile(
    r"^OSS4-HMAC-SHA256 Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/(?P<product>[^/,\s]+)"
    r"/aliyun_v4_request(?:,AdditionalHeaders=(?P<additional>[a-z0-9;-]*))?,Signature=(?P<signature>[0-9a-f]{64})$"
)
_EC = {
    "AccessDenied": "0003-00000001",
    "SignatureDoesNotMatch": "0002-00000040",
    "InvalidAccessKeyId": "0002-00000002",
    "RequestTimeTooSkewed": "0002-00000225",
    "NoSuchKey": "0026-00000001",
    "NoSuchBucket": "0015-00000101",
    "NoSuchUpload": "0042-00000002",
    "InvalidPart": "0042-00000311",
    "InvalidArgument": "0017-00000208",
    "InternalError": "0000-00000001",
    "NotImplemented": "0000-00000002",
    "MalformedXML": "0042-00000201",
}


def crc64_function() -> Any:
    """CRC64-ECMA as OSS computes it (crcmod's C extension, a dependency of the OSS SDK)."""
    import crcmod  # loaded when the emulator's OSS first checksums an object, not when Mlab imports it

    return crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True)


def crc64_combine() -> Any:
    """CRC64 of A+B from CRC64(A), CRC64(B) and len(B) (the OSS SDK's combine, over crcmod's polynomial)."""
    from alibabacloud_oss_v2.crc import mkCombineFun

    return mkCombineFun(0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF)


def iso_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class OssProblem(Exception):
    def __init__(self, status: int, code: str, message: str):
        self.status, self.code, self.message = status, code, message
        super().__init__(f"{code}: {message}")


@dataclass
class StoredObject:
    blob: Path
    size: int
    etag: str
    crc64: str
    last_modified: dt.datetime
    content_type: str
    metadata: dict[str, str]
    object_type: str = "Normal"
    tail: list[Path] = field(default_factory=list)  # a multipart object's later parts, in order

    @property
    def blobs(self) -> list[Path]:
        return [self.blob, *self.tail]

    def discard(self) -> None:
        for blob in self.blobs:
            blob.unlink(missing_ok=True)


@dataclass
class MultipartUpload:
    bucket: str
    key: str
    upload_id: str
    initiated: dt.datetime
    content_type: str
    metadata: dict[str, str]
    parts: dict[int, tuple[Path, int, str]] = field(default_factory=dict)  # number → (blob, size, etag)
    part_crcs: dict[int, int] = field(default_factory=dict)


class OssFaults:
    """What the emulator's OSS is told to get wrong; consumed as requests arrive. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._errors: list[dict[str, Any]] = []
            self._cuts: list[dict[str, Any]] = []
            self._denials: list[dict[str, Any]] = []

    def fail_next(self, count: int = 1, *, status: int = 500, operation: str | None = None) -> None:
        """The next ``count`` OSS requests (of ``operation`` only, e.g. "UploadPart") answer ``status``."""
        with self._lock:
            self._errors.append({"count": int(count), "status": int(status), "operation": operation})

    def cut_next(self, *, operation: str = "PutObject", after_bytes: int = 0, count: int = 1) -> None:
        """The next ``count`` requests of ``operation`` lose their connection after ``after_bytes`` of body."""
        with self._lock:
            self._cuts.append({"count": int(count), "after_bytes": int(after_bytes), "operation": operation})

    def deny(self, prefix: str = "", *, verbs: tuple[str, ...] = ("read",), principal: str = "client") -> None:
        """Refuse ``verbs`` (read, write, delete, list) under ``bucket/prefix`` to ``principal``: "client" (the
        credentials signing requests) or "job" (the workspace role a job reads inputs and writes outputs with)."""
        with self._lock:
            self._denials.append({"prefix": prefix, "verbs": tuple(verbs), "principal": principal})

    @staticmethod
    def _take(queue: list[dict[str, Any]], operation: str) -> dict[str, Any] | None:
        for entry in queue:
            if entry["operation"] in (None, operation):
                entry["count"] -= 1
                if entry["count"] <= 0:
                    queue.remove(entry)
                return dict(entry)
        return None

    def take_error(self, operation: str) -> int | None:
        with self._lock:
            entry = self._take(self._errors, operation)
            return entry["status"] if entry else None

    def take_cut(self, operation: str) -> int | None:
        with self._lock:
            entry = self._take(self._cuts, operation)
            return entry["after_bytes"] if entry else None

    def denied(self, principal: str, verb: str, bucket: str, key: str) -> bool:
        location = f"{bucket}/{key}"
        with self._lock:
            return any(
                d["principal"] == principal and verb in d["verbs"] and location.startswith(d["prefix"])
                for d in self._denials
            )

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "fail_next": [dict(e) for e in self._errors],
                "cut_next": [dict(c) for c in self._cuts],
                "deny": [dict(d, verbs=list(d["verbs"])) for d in self._denials],
            }


class OssState:
    """Buckets, objects and multipart uploads, with blobs on disk. Every method is atomic under one lock."""

    def __init__(self, root: Path, buckets: tuple[str, ...]):
        self.root = root
        self.blobs = root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._objects: dict[str, dict[str, StoredObject]] = {name: {} for name in buckets}
        self._uploads: dict[str, MultipartUpload] = {}

    def new_blob(self) -> Path:
        return self.blobs / uuid.uuid4().hex

    def has_bucket(self, bucket: str) -> bool:
        return bucket in self._objects

    def _bucket(self, bucket: str) -> dict[str, StoredObject]:
        try:
            return self._objects[bucket]
        except KeyError:
            raise OssProblem(404, "NoSuchBucket", "The specified bucket does not exist.") from None

    def put(self, bucket: str, key: str, stored: StoredObject) -> None:
        with self._lock:
            objects = self._bucket(bucket)
            previous = objects.get(key)
            objects[key] = stored
        if previous is not None:
            previous.discard()

    def get(self, bucket: str, key: str) -> StoredObject:
        with self._lock:
            found = self._bucket(bucket).get(key)
        if found is None:
            raise OssProblem(404, "NoSuchKey", "The specified key does not exist.")
        return found

    def delete(self, bucket: str, key: str) -> None:
        with self._lock:
            found = self._bucket(bucket).pop(key, None)
        if found is not None:
            found.discard()

    def keys(self, bucket: str) -> list[str]:
        with self._lock:
            return sorted(self._bucket(bucket))

    def begin_upload(self, upload: MultipartUpload) -> None:
        with self._lock:
            self._bucket(upload.bucket)
            self._uploads[upload.upload_id] = upload

    def upload(self, bucket: str, key: str, upload_id: str) -> MultipartUpload:
        with self._lock:
            found = self._uploads.get(upload_id)
        if found is None or (found.bucket, found.key) != (bucket, key):
            raise OssProblem(
                404,
                "NoSuchUpload",
                "The specified upload does not exist. The upload ID may be invalid, or the "
                "upload may have been aborted or completed.",
            )
        return found

    def add_part(self, upload: MultipartUpload, number: int, blob: Path, size: int, etag: str, crc: int) -> None:
        with self._lock:
            if upload.upload_id not in self._uploads:
                blob.unlink(missing_ok=True)
                raise OssProblem(404, "NoSuchUpload", "The specified upload does not exist.")
            previous = upload.parts.get(number)
            upload.parts[number] = (blob, size, etag)
            upload.part_crcs[number] = crc
        if previous is not None:
            previous[0].unlink(missing_ok=True)

    def end_upload(self, upload_id: str) -> MultipartUpload | None:
        with self._lock:
            return self._uploads.pop(upload_id, None)

    def uploads(self, bucket: str) -> list[MultipartUpload]:
        with self._lock:
            return sorted((u for u in self._uploads.values() if u.bucket == bucket), key=lambda u: (u.key, u.initiated))

    def read(self, bucket: str, key: str) -> bytes:
        """An object's bytes (the emulator's own jobs read their inputs this way)."""
        return b"".join(blob.read_bytes() for blob in self.get(bucket, key).blobs)

    def write_file(self, bucket: str, key: str, source: Path, content_type: str = "application/octet-stream") -> None:
        """Store a file as an object (how a job's output channel reaches OSS)."""
        blob = self.new_blob()
        shutil.copyfile(source, blob)
        data_md5, crc = hashlib.md5(), 0  # noqa: S324  (OSS's ETag is an MD5)
        crc_of = crc64_function()
        with blob.open("rb") as handle:
            while chunk := handle.read(BLOCK):
                data_md5.update(chunk)
                crc = crc_of(chunk, crc)
        stored = StoredObject(
            blob=blob,
            size=blob.stat().st_size,
            etag=f'"{data_md5.hexdigest().upper()}"',
            crc64=str(crc),
            last_modified=dt.datetime.now(dt.UTC),
            content_type=content_type,
            metadata={},
        )
        self.put(bucket, key, stored)

    def set_last_modified(self, bucket: str, key: str, moment: dt.datetime) -> None:
        """Age an object (tests of pai_cleanup)."""
        with self._lock:
            self.get(bucket, key).last_modified = moment


class OssServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], *, state: OssState, faults: OssFaults, region: str, keys: Any):
        self.state, self.faults, self.region = state, faults, region
        self.keys = keys  # access key id → (secret, security token or "")
        super().__init__(address, _OssHandler)

    @property
    def netloc(self) -> str:
        host, port = self.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server, bound to a host name or address
        return f"{host}:{port}"


def _signing_key(secret: str, date: str, region: str, product: str) -> bytes:
    key = hmac.new(f"aliyun_v4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    key = hmac.new(key, region.encode(), hashlib.sha256).digest()
    key = hmac.new(key, product.encode(), hashlib.sha256).digest()
    return hmac.new(key, b"aliyun_v4_request", hashlib.sha256).digest()


def _canonical_query(raw_query: str) -> str:
    pairs = sorted(tuple(item.partition("=")[::2]) for item in raw_query.split("&") if item)
    return "&".join(f"{k}={v}" if v else k for k, v in pairs)


def verify_v4(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    region: str,
    keys: Mapping[str, tuple[str, str]],
    now: dt.datetime | None = None,
) -> str:
    """Check an OSS V4 signature; return the access key id. Raises :class:`OssProblem` (never quoting a secret)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    match = _AUTH_RE.match(lowered.get("authorization", "").strip())
    if not match:
        raise OssProblem(403, "AccessDenied", "The Authorization header is missing or is not OSS4-HMAC-SHA256.")
    key_id = match["key"]
    if key_id not in keys:
        raise OssProblem(403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records.")
    secret, token = keys[key_id]
    if token and lowered.get("x-oss-security-token") != token:
        raise OssProblem(403, "InvalidAccessKeyId", "The security token you provided is invalid.")
    if match["region"] != region or match["product"] != "oss":
        raise OssProblem(
            403, "SignatureDoesNotMatch", f"The credential scope names region {match['region']}; this is {region}."
        )
    stamp = lowered.get("x-oss-date", "")
    try:
        sent = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise OssProblem(403, "AccessDenied", "x-oss-date is missing or not yyyyMMddTHHmmssZ.") from None
    if stamp[:8] != match["date"]:
        raise OssProblem(403, "SignatureDoesNotMatch", "The credential scope date is not the date of x-oss-date.")
    if abs((now or dt.datetime.now(dt.UTC)) - sent) > MAX_CLOCK_SKEW:
        raise OssProblem(
            403, "RequestTimeTooSkewed", "The difference between the request time and the current time is too large."
        )
    additional = [h for h in (match["additional"] or "").split(";") if h]
    missing = [h for h in additional if h not in lowered]
    if missing:
        raise OssProblem(403, "SignatureDoesNotMatch", f"Additional headers are absent: {', '.join(missing)}.")
    signed = sorted(
        (name, value)
        for name, value in lowered.items()
        if name.startswith("x-oss-") or name in ("content-type", "content-md5") or name in additional
    )
    canonical = "\n".join(
        [
            method,
            quote(unquote(raw_path), safe="/"),
            _canonical_query(raw_query),
            "".join(f"{name}:{value.strip()}\n" for name, value in signed),
            ";".join(sorted(additional)),
            lowered.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD"),
        ]
    )
    scope = f"{match['date']}/{match['region']}/oss/aliyun_v4_request"
    text = f"OSS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    expected = hmac.new(_signing_key(secret, match["date"], match["region"], "oss"), text.encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), match["signature"]):
        raise OssProblem(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    return key_id


class _OssHandler(BaseHTTPRequestHandler):
    server: OssServer
    server_version = SERVER_HEADER
    sys_version = ""
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s OSS %s %s", LOG_PREFIX, self.address_string(), format % args)

    def do_GET(self) -> None:
        self._answer("GET")

    def do_HEAD(self) -> None:
        self._answer("HEAD")

    def do_PUT(self) -> None:
        self._answer("PUT")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_DELETE(self) -> None:
        self._answer("DELETE")

    # -- dispatch --------------------------------------------------------------------------------------
    def _answer(self, method: str) -> None:
        started = time.monotonic()
        self._request_id = secrets.token_hex(12).upper()
        parts = urlsplit(self.path)
        query = dict(item.partition("=")[::2] for item in parts.query.split("&") if item)
        query = {unquote(k): unquote(v) for k, v in query.items()}
        bucket, _, raw_key = parts.path.lstrip("/").partition("/")
        bucket, key = unquote(bucket), unquote(raw_key)
        operation = self._operation(method, key, query)
        status = 200
        try:
            if not bucket:
                raise OssProblem(501, "NotImplemented", f"{LABEL}: only path-style requests to a bucket are served.")
            self._check_host()
            key_id = verify_v4(
                method=method,
                raw_path=parts.path,
                raw_query=parts.query,
                headers=dict(self.headers.items()),
                region=self.server.region,
                keys=self.server.keys,
            )
            del key_id
            error_status = self.server.faults.take_error(operation)
            if error_status is not None:
                raise OssProblem(error_status, "InternalError", f"{LABEL}: failing this {operation} as it was told to.")
            if not self.server.state.has_bucket(bucket):
                raise OssProblem(404, "NoSuchBucket", "The specified bucket does not exist.")
            verb = {"GET": "read", "HEAD": "read", "DELETE": "delete"}.get(method, "write")
            if operation in ("ListObjectsV2", "ListMultipartUploads"):
                verb = "list"
            if operation == "AbortMultipartUpload":
                verb = "abort"
            if self.server.faults.denied("client", verb, bucket, key):
                raise OssProblem(403, "AccessDenied", "You have no right to access this object because of bucket acl.")
            status = self._perform(operation, bucket, key, query)
        except OssProblem as problem:
            status = problem.status
            self._send_error(problem)
        except _ConnectionCut:
            status = 0
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            status = 0
            self.close_connection = True
        except Exception:
            logger.exception("%s OSS %s %s broke", LOG_PREFIX, method, parts.path)
            status = 500
            self._send_error(OssProblem(500, "InternalError", f"{LABEL}: an internal error."))
        logger.info(
            "%s OSS %s /%s/%s %s → %s in %.0f ms",
            LOG_PREFIX,
            method,
            bucket,
            key,
            operation,
            status or "connection dropped",
            1000 * (time.monotonic() - started),
        )

    @staticmethod
    def _operation(method: str, key: str, query: Mapping[str, str]) -> str:
        if not key:
            if method == "GET" and "uploads" in query:
                return "ListMultipartUploads"
            if method == "GET":
                return "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
            return f"{method}Bucket"
        if method == "POST" and "uploads" in query:
            return "InitiateMultipartUpload"
        if method == "PUT" and "uploadId" in query:
            return "UploadPart"
        if method == "POST" and "uploadId" in query:
            return "CompleteMultipartUpload"
        if method == "DELETE" and "uploadId" in query:
            return "AbortMultipartUpload"
        return {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(
            method, f"{method}Object"
        )

    def _check_host(self) -> None:
        host = self.headers.get("Host", "")
        if host != self.server.netloc:
            raise OssProblem(
                400,
                "InvalidArgument",
                f"This request was addressed to {host or 'no host'}; this emulator serves {self.server.netloc} "
                "path-style only.",
            )

    def _perform(self, operation: str, bucket: str, key: str, query: Mapping[str, str]) -> int:
        state = self.server.state
        if operation == "PutObject":
            blob, size, etag, crc = self._receive(operation)
            state.put(bucket, key, self._stored(blob, size, etag, crc))
            return self._send(200, headers={"ETag": etag, "x-oss-hash-crc64ecma": crc})
        if operation in ("GetObject", "HeadObject"):
            return self._send_object(state.get(bucket, key), body=operation == "GetObject")
        if operation == "DeleteObject":
            state.delete(bucket, key)
            return self._send(204)
        if operation == "InitiateMultipartUpload":
            upload = MultipartUpload(
                bucket=bucket,
                key=key,
                upload_id=secrets.token_hex(16).upper(),
                initiated=dt.datetime.now(dt.UTC),
                content_type=self.headers.get("Content-Type", "application/octet-stream"),
                metadata=self._metadata(),
            )
            self._drain()
            state.begin_upload(upload)
            return self._send_xml(
                "InitiateMultipartUploadResult",
                [
                    ("Bucket", bucket),
                    ("Key", quote(key) if query.get("encoding-type") == "url" else key),
                    ("UploadId", upload.upload_id),
                ]
                + ([("EncodingType", "url")] if query.get("encoding-type") == "url" else []),
            )
        if operation == "UploadPart":
            upload = state.upload(bucket, key, query["uploadId"])
            try:
                number = int(query.get("partNumber", ""))
            except ValueError:
                raise OssProblem(400, "InvalidArgument", "partNumber must be a whole number from 1 to 10000.") from None
            if not 1 <= number <= 10000:
                raise OssProblem(400, "InvalidArgument", "partNumber must be a whole number from 1 to 10000.")
            blob, size, etag, crc = self._receive(operation)
            state.add_part(upload, number, blob, size, etag, int(crc))
            return self._send(200, headers={"ETag": etag, "x-oss-hash-crc64ecma": crc})
        if operation == "CompleteMultipartUpload":
            return self._complete(bucket, key, query)
        if operation == "AbortMultipartUpload":
            upload = state.upload(bucket, key, query["uploadId"])
            self._drain()
            state.end_upload(upload.upload_id)
            for blob, _, _ in upload.parts.values():
                blob.unlink(missing_ok=True)
            return self._send(204)
        if operation == "ListObjectsV2":
            return self._list_objects(bucket, query)
        if operation == "ListMultipartUploads":
            return self._list_uploads(bucket, query)
        raise OssProblem(501, "NotImplemented", f"{LABEL} does not implement {operation}.")

    # -- bodies ----------------------------------------------------------------------------------------
    def _body_chunks(self, operation: str) -> Iterator[bytes]:
        cut = self.server.faults.take_cut(operation)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            source = self._chunked()
        else:
            try:
                remaining = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise OssProblem(400, "InvalidArgument", "Content-Length is not a number.") from None
            source = self._sized(remaining)
        received = 0
        for chunk in source:
            if cut is not None and received + len(chunk) >= cut:
                raise _ConnectionCut()
            received += len(chunk)
            yield chunk
        if cut is not None:
            raise _ConnectionCut()

    def _sized(self, remaining: int) -> Iterator[bytes]:
        while remaining > 0:
            chunk = self.rfile.read(min(BLOCK, remaining))
            if not chunk:
                raise _ConnectionCut()
            remaining -= len(chunk)
            yield chunk

    def _chunked(self) -> Iterator[bytes]:
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip() or b"0", 16)
            except ValueError:
                raise OssProblem(400, "InvalidArgument", "A chunk size is not hexadecimal.") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return
            yield self.rfile.read(size)
            self.rfile.readline(8)

    def _drain(self) -> bytes:
        return b"".join(self._body_chunks("-"))

    def _receive(self, operation: str) -> tuple[Path, int, str, str]:
        """Stream the body to a new blob; (blob, size, ETag, CRC64). Nothing is visible until the caller
        registers the blob, and a body that does not arrive whole leaves nothing behind."""
        blob = self.server.state.new_blob()
        digest, crc, size = hashlib.md5(), 0, 0  # noqa: S324  (OSS's ETag is an MD5)
        crc_of = crc64_function()
        try:
            with blob.open("wb") as out:
                for chunk in self._body_chunks(operation):
                    digest.update(chunk)
                    crc = crc_of(chunk, crc)
                    size += len(chunk)
                    out.write(chunk)
        except BaseException:
            blob.unlink(missing_ok=True)
            raise
        return blob, size, f'"{digest.hexdigest().upper()}"', str(crc)

    def _metadata(self) -> dict[str, str]:
        return {
            k.lower()[len("x-oss-meta-") :]: v for k, v in self.headers.items() if k.lower().startswith("x-oss-meta-")
        }

    def _stored(self, blob: Path, size: int, etag: str, crc: str) -> StoredObject:
        return StoredObject(
            blob=blob,
            size=size,
            etag=etag,
            crc64=crc,
            last_modified=dt.datetime.now(dt.UTC),
            content_type=self.headers.get("Content-Type", "application/octet-stream"),
            metadata=self._metadata(),
        )

    def _complete(self, bucket: str, key: str, query: Mapping[str, str]) -> int:
        state = self.server.state
        upload = state.upload(bucket, key, query["uploadId"])
        try:
            root = ElementTree.fromstring(self._drain())
            asked = [
                (int(p.findtext("PartNumber") or 0), (p.findtext("ETag") or "").strip()) for p in root.iter("Part")
            ]
        except (ElementTree.ParseError, ValueError):
            raise OssProblem(400, "MalformedXML", "The XML you provided was not well-formed.") from None
        if not asked or [n for n, _ in asked] != sorted({n for n, _ in asked}):
            raise OssProblem(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
        for number, etag in asked:
            part = upload.parts.get(number)
            if part is None or part[2].strip('"') != etag.strip('"'):
                raise OssProblem(400, "InvalidPart", f"Part {number} was not uploaded, or its ETag does not match.")
        # Like OSS, the parts become the object as they are: nothing is copied, the CRC64s are combined.
        if state.end_upload(upload.upload_id) is None:
            raise OssProblem(404, "NoSuchUpload", "The specified upload does not exist.")
        combine = crc64_combine()
        crc, md5s, size = 0, hashlib.md5(), 0  # noqa: S324
        blobs: list[Path] = []
        for number, _ in asked:
            part_blob, part_size, part_etag = upload.parts.pop(number)
            md5s.update(bytes.fromhex(part_etag.strip('"')))
            crc = combine(crc, upload.part_crcs[number], part_size) if blobs else upload.part_crcs[number]
            blobs.append(part_blob)
            size += part_size
        for part_blob, _, _ in upload.parts.values():  # uploaded but not named in the list: dropped
            part_blob.unlink(missing_ok=True)
        etag = f'"{md5s.hexdigest().upper()}-{len(asked)}"'
        stored = StoredObject(
            blob=blobs[0],
            tail=blobs[1:],
            size=size,
            etag=etag,
            crc64=str(crc),
            last_modified=dt.datetime.now(dt.UTC),
            content_type=upload.content_type,
            metadata=upload.metadata,
            object_type="Multipart",
        )
        state.put(bucket, key, stored)
        url = query.get("encoding-type") == "url"
        return self._send_xml(
            "CompleteMultipartUploadResult",
            ([("EncodingType", "url")] if url else [])
            + [
                ("Location", f"http://{self.server.netloc}/{bucket}/{quote(key)}"),
                ("Bucket", bucket),
                ("Key", quote(key) if url else key),
                ("ETag", etag),
            ],
            headers={"x-oss-hash-crc64ecma": str(crc)},
        )

    # -- listings --------------------------------------------------------------------------------------
    def _list_objects(self, bucket: str, query: Mapping[str, str]) -> int:
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter", "")
        try:
            max_keys = int(query.get("max-keys") or 100)
        except ValueError:
            raise OssProblem(400, "InvalidArgument", "max-keys must be a whole number.") from None
        if not 1 <= max_keys <= 1000:
            raise OssProblem(400, "InvalidArgument", "max-keys must be between 1 and 1000.")
        after = query.get("continuation-token") or query.get("start-after") or ""
        url = query.get("encoding-type") == "url"
        enc = (lambda text: quote(text, safe="")) if url else (lambda text: text)
        entries: list[tuple[str, StoredObject | None]] = []
        seen_prefixes: set[str] = set()
        for key in self.server.state.keys(bucket):
            if not key.startswith(prefix) or key <= after:
                continue
            if delimiter and delimiter in key[len(prefix) :]:
                common = key[: len(prefix) + key[len(prefix) :].index(delimiter) + len(delimiter)]
                if common not in seen_prefixes and common > after:
                    seen_prefixes.add(common)
                    entries.append((common, None))
                continue
            try:
                entries.append((key, self.server.state.get(bucket, key)))
            except OssProblem:
                continue  # deleted meanwhile
        page, truncated = entries[:max_keys], len(entries) > max_keys
        fields: list[tuple[str, Any]] = [("Name", bucket), ("Prefix", enc(prefix))]
        if query.get("continuation-token"):
            fields.append(("ContinuationToken", query["continuation-token"]))
        if query.get("start-after"):
            fields.append(("StartAfter", enc(query["start-after"])))
        fields += [("MaxKeys", str(max_keys)), ("Delimiter", enc(delimiter))]
        if url:
            fields.append(("EncodingType", "url"))
        fields += [("IsTruncated", "true" if truncated else "false"), ("KeyCount", str(len(page)))]
        if truncated:
            fields.append(("NextContinuationToken", page[-1][0]))
        for name, stored in page:
            if stored is None:
                fields.append(("CommonPrefixes", [("Prefix", enc(name))]))
            else:
                fields.append(
                    (
                        "Contents",
                        [
                            ("Key", enc(name)),
                            ("LastModified", iso_time(stored.last_modified)),
                            ("ETag", stored.etag),
                            ("Type", stored.object_type),
                            ("Size", str(stored.size)),
                            ("StorageClass", "Standard"),
                        ],
                    )
                )
        return self._send_xml("ListBucketResult", fields)

    def _list_uploads(self, bucket: str, query: Mapping[str, str]) -> int:
        prefix = query.get("prefix", "")
        url = query.get("encoding-type") == "url"
        enc = (lambda text: quote(text, safe="")) if url else (lambda text: text)
        marker = (query.get("key-marker", ""), query.get("upload-id-marker", ""))
        uploads = [
            u for u in self.server.state.uploads(bucket) if u.key.startswith(prefix) and (u.key, u.upload_id) > marker
        ]
        limit = int(query.get("max-uploads") or 1000)
        page, truncated = uploads[:limit], len(uploads) > limit
        fields: list[tuple[str, Any]] = [
            ("Bucket", bucket),
            ("KeyMarker", enc(marker[0])),
            ("UploadIdMarker", marker[1]),
            ("NextKeyMarker", enc(page[-1].key) if truncated else ""),
            ("NextUploadIdMarker", page[-1].upload_id if truncated else ""),
            ("Delimiter", ""),
            ("Prefix", enc(prefix)),
            ("MaxUploads", str(limit)),
            ("IsTruncated", "true" if truncated else "false"),
        ]
        if url:
            fields.append(("EncodingType", "url"))
        fields += [
            ("Upload", [("Key", enc(u.key)), ("UploadId", u.upload_id), ("Initiated", iso_time(u.initiated))])
            for u in page
        ]
        return self._send_xml("ListMultipartUploadsResult", fields)

    # -- answers ---------------------------------------------------------------------------------------
    def _common_headers(self) -> dict[str, str]:
        return {
            "x-oss-request-id": self._request_id,
            "Date": format_datetime(dt.datetime.now(dt.UTC), usegmt=True),
            "X-Mlab-Emulator": "true",
        }

    def _send(self, status: int, *, body: bytes = b"", headers: Mapping[str, str] | None = None) -> int:
        self.send_response(status)
        for name, value in {**self._common_headers(), **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        return status

    def _send_xml(self, root: str, fields: list[tuple[str, Any]], headers: Mapping[str, str] | None = None) -> int:
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n' + _xml(root, fields)).encode()
        return self._send(200, body=body, headers={"Content-Type": "application/xml", **(headers or {})})

    def _send_error(self, problem: OssProblem) -> None:
        ec = _EC.get(problem.code, "0000-00000000")
        fields = [
            ("Code", problem.code),
            ("Message", problem.message),
            ("RequestId", self._request_id),
            ("HostId", self.headers.get("Host", "") if self.headers else ""),
            ("EC", ec),
            ("RecommendDoc", f"This answer comes from the {LABEL}'s OSS, not from Alibaba Cloud."),
        ]
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n' + _xml("Error", fields)).encode()
        try:
            self._send(problem.status, body=body, headers={"Content-Type": "application/xml", "x-oss-ec": ec})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_object(self, stored: StoredObject, *, body: bool) -> int:
        headers = {
            "Content-Type": stored.content_type,
            "ETag": stored.etag,
            "Last-Modified": format_datetime(stored.last_modified, usegmt=True),
            "x-oss-hash-crc64ecma": stored.crc64,
            "x-oss-object-type": stored.object_type,
            "x-oss-storage-class": "Standard",
            **{f"x-oss-meta-{k}": v for k, v in stored.metadata.items()},
        }
        self.send_response(200)
        for name, value in {**self._common_headers(), **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(stored.size))
        self.end_headers()
        if body:
            try:
                for blob in stored.blobs:
                    with blob.open("rb") as source:
                        shutil.copyfileobj(source, self.wfile, BLOCK)
            except FileNotFoundError:  # overwritten or deleted while being read: the client sees a short body
                self.close_connection = True
        return 200


class _ConnectionCut(Exception):
    """The emulator drops the connection mid-request (a fault it was told to cause, or the client went)."""


def _xml(tag: str, fields: list[tuple[str, Any]]) -> str:
    inner = "".join(
        _xml(name, value) if isinstance(value, list) else f"<{name}>{escape(str(value))}</{name}>"
        for name, value in fields
    )
    return f"<{tag}>{inner}</{tag}>"
