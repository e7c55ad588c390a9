"""Mlab's objects on Alibaba Cloud OSS, through Alibaba's official SDK (``alibabacloud-oss-v2``).

Layout under ``MLAB_OSS_PREFIX`` (``<prefix>`` below) in ``MLAB_OSS_BUCKET``::

    <prefix>/runs/<run id>/input/<file>            what a run hands to its job (the sample)
    <prefix>/runs/<run id>/output/                 the job's output channel (model.onnx, report.json)
    <prefix>/code/mlab-trainer-<sha256>.tar.gz     Mlab's trainer as job code, one object per version
    <prefix>/probe/<random>                        pai_check's probe object, deleted at once

Contracts:

- An upload is a single PUT up to ``multipart_threshold`` bytes, else a multipart upload. Either way a
  reader sees the old object or the complete new one: a multipart upload becomes an object only when it is
  completed, and one that fails is aborted (its parts deleted) before the error is raised. Each PUT and each
  part is retried with exponential backoff on 5xx answers and broken connections; the SDK checks every
  body it sends against the CRC64 OSS computes.
- A download is capped (``max_bytes``), written to a temporary file beside the destination and renamed into
  place only after its size and checksum were checked: sha256 against the caller's or the object's
  ``x-oss-meta-mlab-sha256``, else CRC64 against OSS's ``x-oss-hash-crc64ecma``.
- Errors are :class:`OssError` in plain words naming the ``oss://`` location and, for a 403, the permission
  that is missing. Credentials never appear in them.

Requests are signed with OSS's V4 signature, Host included (OSS signs it only when asked to: Mlab asks, so a
request replayed to another host fails). Nothing here imports Django: settings come in as an object with the
``MLAB_OSS_*`` names, credentials as an :class:`~.credentials.CredentialsProvider`.
"""

from __future__ import annotations

import builtins  # in OssStore's signatures, ``list`` is its method: builtins.list is the type
import datetime as dt
import hashlib
import logging
import os
import random
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

import alibabacloud_oss_v2 as oss
from alibabacloud_oss_v2 import exceptions as oss_errors
from alibabacloud_oss_v2.signer import SignerV4

from .credentials import CredentialsProvider, credentials_from_settings
from .errors import PaiConfigurationError, PaiError

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
META_SHA256 = "mlab-sha256"  # sent as x-oss-meta-mlab-sha256
CODE_NAME = "mlab-trainer-{sha}.tar.gz"
T = TypeVar("T")


class OssError(PaiError):
    """OSS refused or failed an operation. The message names the oss:// location."""

    def __init__(self, message: str, *, status: int = 0, code: str = ""):
        self.status, self.code = status, code
        super().__init__(message)


class OssAccessDenied(OssError):
    """403: the credentials lack a permission (named in the message)."""


class OssNotFound(OssError):
    """404: no such object (or bucket)."""


class OssIntegrityError(OssError):
    """What arrived is not what was stored: wrong size, sha256 or CRC64, or larger than allowed."""


class _Transient(Exception):
    """An attempt that may succeed if repeated."""

    def __init__(self, message: str, cause: OssError | None = None):
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class OssSettings:
    """``MLAB_OSS_*``: where Mlab's objects live, and how transfers behave."""

    bucket: str
    region: str
    endpoint: str
    prefix: str = "mlab"
    multipart_threshold: int = 64 * MiB
    part_size: int = 16 * MiB
    parallel_parts: int = 2
    max_retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 20.0
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_download_bytes: int = 2 * 1024 * MiB

    @classmethod
    def from_settings(cls, settings: Any) -> OssSettings:
        names = {"bucket": "MLAB_OSS_BUCKET", "region": "MLAB_OSS_REGION", "endpoint": "MLAB_OSS_ENDPOINT"}
        missing = [name for name in names.values() if not getattr(settings, name, "")]
        if missing:
            raise PaiConfigurationError(f"OSS is not configured: set {', '.join(missing)}.")
        optional = {
            "prefix": "MLAB_OSS_PREFIX",
            "multipart_threshold": "MLAB_OSS_MULTIPART_THRESHOLD",
            "part_size": "MLAB_OSS_PART_SIZE",
            "max_retries": "MLAB_OSS_MAX_RETRIES",
            "max_download_bytes": "MLAB_OSS_MAX_DOWNLOAD_BYTES",
            "connect_timeout": "MLAB_PAI_CONNECT_TIMEOUT",
            "backoff": "MLAB_PAI_BACKOFF",
        }
        values = {
            field: getattr(settings, name) for field, name in {**names, **optional}.items() if hasattr(settings, name)
        }
        values["prefix"] = str(values.get("prefix", cls.prefix)).strip("/")
        return cls(**values)


@dataclass(frozen=True)
class StoredObject:
    """An object Mlab wrote (or found already written)."""

    uri: str
    key: str
    size: int
    sha256: str = ""
    etag: str = ""
    reused: bool = False


@dataclass(frozen=True)
class DownloadedObject:
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: dt.datetime | None
    etag: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeStep:
    permission: str  # the RAM action, e.g. oss:PutObject
    ok: bool
    message: str


@dataclass(frozen=True)
class CleanupReport:
    runs: list[str]
    objects: int
    bytes: int
    aborted_uploads: int


def parse_oss_uri(uri: str) -> tuple[str, str]:
    """``oss://bucket/key`` → (bucket, key). The key may be empty (the bucket) or end with / (a prefix)."""
    parts = urlsplit(uri)
    if parts.scheme != "oss" or not parts.netloc:
        raise ValueError(f"{uri!r} is not an oss://bucket/key URI.")
    return parts.netloc, parts.path.lstrip("/")


def oss_uri(bucket: str, key: str) -> str:
    return f"oss://{bucket}/{key}"


class _HostSigningSigner(SignerV4):
    """OSS V4 with ``host`` among the signed headers (AdditionalHeaders), as OSS allows and Mlab wants."""

    def __init__(self, host: str):
        self._host = host

    def sign(self, signing_ctx: Any) -> None:
        if signing_ctx.request is not None and not signing_ctx.auth_method_query:
            signing_ctx.request.headers["host"] = self._host
            signing_ctx.additional_headers = {"host"}
        super().sign(signing_ctx)


class _SdkCredentials(oss.credentials.CredentialsProvider):
    """Mlab's credentials provider as the OSS SDK asks for it (fetched again before every request)."""

    def __init__(self, provider: CredentialsProvider):
        self._provider = provider

    def get_credentials(self) -> oss.credentials.Credentials:
        found = self._provider.get()
        return oss.credentials.Credentials(found.access_key_id, found.secret(), found.token() or None)

    def __repr__(self) -> str:
        return f"_SdkCredentials({self._provider.describe()!r})"


def _permission_hint(verb: str) -> str:
    return {
        "read": "oss:GetObject",
        "write": "oss:PutObject",
        "delete": "oss:DeleteObject",
        "list": "oss:ListObjects",
        "abort": "oss:AbortMultipartUpload",
    }.get(verb, "oss:*")


class OssStore:
    """Mlab's prefix of one bucket: the object layout, transfers that never leave half an object, listing,
    cleanup and pai_check's probe."""

    def __init__(self, settings: OssSettings, credentials: CredentialsProvider, *, client: Any = None):
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix.strip("/")
        self.credentials = credentials
        endpoint = settings.endpoint if "://" in settings.endpoint else f"https://{settings.endpoint}"
        self.endpoint = endpoint
        self.endpoint_host = urlsplit(endpoint).netloc
        self.client = client or self._sdk_client(endpoint)

    def _sdk_client(self, endpoint: str) -> Any:
        config = oss.config.load_default()
        config.region = self.settings.region
        config.endpoint = endpoint
        config.credentials_provider = _SdkCredentials(self.credentials)
        config.use_path_style = urlsplit(endpoint).scheme == "http" or None  # the emulator serves path-style
        config.connect_timeout = self.settings.connect_timeout
        config.readwrite_timeout = self.settings.read_timeout
        config.retry_max_attempts = 1  # retries are this module's: one policy, with the abort in the right place
        return oss.Client(config, signer=_HostSigningSigner(urlsplit(endpoint).netloc))

    @classmethod
    def from_settings(cls, settings: Any, *, credentials: CredentialsProvider | None = None) -> OssStore:
        return cls(OssSettings.from_settings(settings), credentials or credentials_from_settings(settings))

    def __repr__(self) -> str:
        return f"OssStore(oss://{self.bucket}/{self.prefix}/, endpoint={self.endpoint!r})"

    # -- layout ------------------------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def run_input_key(self, run_id: int | str, name: str = "sample.npz") -> str:
        return self.key("runs", str(run_id), "input", name)

    def run_output_prefix(self, run_id: int | str) -> str:
        return self.key("runs", str(run_id), "output") + "/"

    def code_key(self, sha256: str) -> str:
        return self.key("code", CODE_NAME.format(sha=sha256))

    def uri(self, key: str) -> str:
        return oss_uri(self.bucket, key)

    def _bucket_and_key(self, where: str) -> tuple[str, str]:
        return parse_oss_uri(where) if where.startswith("oss://") else (self.bucket, where)

    # -- errors and retries --------------------------------------------------------------------------------
    def _translate(self, exc: Exception, verb: str, where: str) -> OssError | _Transient:
        """An SDK exception as Mlab's error (or a transient one), in plain words, without any secret."""
        inner = exc
        while isinstance(inner, oss_errors.OperationError | oss_errors.RequestError | oss_errors.ResponseError):
            nested = inner.unwrap()
            if nested is None or nested is inner:
                break
            inner = nested
        if isinstance(inner, oss_errors.ServiceError):
            status, code = int(inner.status_code or 0), str(inner.code or "")
            detail = f"OSS answered {status} {code}".rstrip()
            if status >= 500:
                return _Transient(f"{detail} for {where}")
            if status == 403:
                return OssAccessDenied(
                    f"Mlab's credentials ({self.credentials.describe()}) cannot {verb} {where}: {detail}. "
                    f"Grant {_permission_hint(verb)} on acs:oss:*:*:{self.bucket}/{self.prefix}/*.",
                    status=status,
                    code=code,
                )
            if status == 404:
                what = "The bucket" if code == "NoSuchBucket" else "Nothing"
                return OssNotFound(f"{what} at {where} does not exist ({detail}).", status=status, code=code)
            return OssError(
                f"OSS refused to {verb} {where}: {detail}: {inner.message or ''}".rstrip(": "), status=status, code=code
            )
        if isinstance(inner, oss_errors.InconsistentError):
            return _Transient(f"the CRC64 of {where} did not match what OSS stored")
        if isinstance(inner, oss_errors.CredentialsBaseError):
            return OssError(f"No credentials to sign the OSS request for {where} ({type(inner).__name__}).")
        if isinstance(inner, OssError):
            return inner
        # Connection refused or reset, timeouts, a body cut short: worth another attempt.
        return _Transient(f"{type(inner).__name__} while trying to {verb} {where}")

    def _delay(self, attempt: int) -> float:
        ceiling = min(self.settings.max_backoff, self.settings.backoff * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)

    def _retrying(self, verb: str, where: str, attempt_once: Callable[[], T]) -> T:
        retries = self.settings.max_retries
        for attempt in range(retries + 1):
            try:
                return attempt_once()
            except OssError:
                raise
            except _Transient as exc:
                failure: OssError | _Transient = exc
            except Exception as exc:  # the SDK's errors, connection errors, timeouts
                failure = self._translate(exc, verb, where)
            if isinstance(failure, OssError):
                raise failure from None
            if attempt == retries:
                raise OssError(f"Could not {verb} {where}: {failure}; gave up after {attempt + 1} attempts.") from None
            delay = self._delay(attempt)
            logger.warning("OSS: %s; retrying in %.2fs (attempt %d of %d)", failure, delay, attempt + 1, retries + 1)
            time.sleep(delay)
        raise AssertionError("unreachable")

    # -- uploads -----------------------------------------------------------------------------------------
    def upload_file(
        self,
        path: str | os.PathLike[str],
        key: str,
        *,
        sha256: str = "",
        content_type: str = "application/octet-stream",
    ) -> StoredObject:
        """Put a file at ``key``: one PUT, or a multipart upload above the threshold (completed or aborted)."""
        path = Path(path)
        size = path.stat().st_size
        metadata = {META_SHA256: sha256} if sha256 else {}
        if size <= self.settings.multipart_threshold:
            etag = self._put(path, key, metadata, content_type)
        else:
            etag = self._multipart(path, size, key, metadata, content_type)
        logger.info("OSS: uploaded %s (%d bytes)", self.uri(key), size)
        return StoredObject(uri=self.uri(key), key=key, size=size, sha256=sha256, etag=etag)

    def upload_bytes(self, data: bytes, key: str, *, content_type: str = "application/octet-stream") -> StoredObject:
        sha = hashlib.sha256(data).hexdigest()

        def put() -> str:
            request = oss.PutObjectRequest(
                bucket=self.bucket, key=key, body=data, metadata={META_SHA256: sha}, content_type=content_type
            )
            return self.client.put_object(request).etag or ""

        etag = self._retrying("write", self.uri(key), put)
        return StoredObject(uri=self.uri(key), key=key, size=len(data), sha256=sha, etag=etag)

    def ensure_uploaded(self, path: str | os.PathLike[str], key: str, *, sha256: str) -> StoredObject:
        """Upload unless ``key`` already holds these bytes (same size and sha256): job code goes up once."""
        size = Path(path).stat().st_size
        found = self.head(key)
        if found is not None and found.size == size and found.metadata.get(META_SHA256) == sha256:
            return StoredObject(self.uri(key), key, size, sha256, found.etag, reused=True)
        return self.upload_file(path, key, sha256=sha256, content_type="application/gzip")

    def _put(self, path: Path, key: str, metadata: dict[str, str], content_type: str) -> str:
        def put() -> str:
            with path.open("rb") as body:
                request = oss.PutObjectRequest(
                    bucket=self.bucket, key=key, body=body, metadata=metadata or None, content_type=content_type
                )
                return self.client.put_object(request).etag or ""

        return self._retrying("write", self.uri(key), put)

    def _multipart(self, path: Path, size: int, key: str, metadata: dict[str, str], content_type: str) -> str:
        where = self.uri(key)

        def initiate() -> str:
            request = oss.InitiateMultipartUploadRequest(
                bucket=self.bucket, key=key, metadata=metadata or None, content_type=content_type
            )
            return self.client.initiate_multipart_upload(request).upload_id

        upload_id = self._retrying("write", where, initiate)
        completed = False
        try:
            offsets = list(enumerate(range(0, size, self.settings.part_size), start=1))
            stop = threading.Event()  # set when the upload fails: the other parts give up at their next attempt
            pool = ThreadPoolExecutor(max(1, self.settings.parallel_parts), thread_name_prefix="oss-part")
            try:
                with path.open("rb") as source:
                    futures = [
                        pool.submit(
                            self._upload_part,
                            source,
                            key,
                            upload_id,
                            number,
                            offset,
                            min(self.settings.part_size, size - offset),
                            stop,
                        )
                        for number, offset in offsets
                    ]
                    parts = [future.result() for future in futures]  # in part order; the first failure is raised
            except BaseException:
                stop.set()
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)

            def complete() -> str:
                request = oss.CompleteMultipartUploadRequest(
                    bucket=self.bucket,
                    key=key,
                    upload_id=upload_id,
                    complete_multipart_upload=oss.CompleteMultipartUpload(parts=parts),
                )
                return self.client.complete_multipart_upload(request).etag or ""

            etag = self._retrying("write", where, complete)
            completed = True
            return etag
        finally:
            if not completed:
                self._abort(key, upload_id)

    def _upload_part(
        self, source: BinaryIO, key: str, upload_id: str, number: int, offset: int, length: int, stop: threading.Event
    ) -> oss.UploadPart:
        def send() -> oss.UploadPart:
            if stop.is_set():
                raise OssError(f"The upload of {self.uri(key)} was abandoned; part {number} was not sent.")
            chunk = os.pread(source.fileno(), length, offset)  # no shared file position between threads
            request = oss.UploadPartRequest(
                bucket=self.bucket, key=key, upload_id=upload_id, part_number=number, body=chunk
            )
            return oss.UploadPart(part_number=number, etag=self.client.upload_part(request).etag)

        return self._retrying("write", f"{self.uri(key)} (part {number})", send)

    def _abort(self, key: str, upload_id: str) -> None:
        """Abort a multipart upload so that its parts go and no object appears. Failing to is logged, not
        raised: the original error is the one to report, and pai_cleanup aborts what is left."""
        try:
            self._retrying(
                "abort",
                self.uri(key),
                lambda: self.client.abort_multipart_upload(
                    oss.AbortMultipartUploadRequest(bucket=self.bucket, key=key, upload_id=upload_id)
                ),
            )
            logger.warning("OSS: aborted the multipart upload of %s", self.uri(key))
        except OssError as exc:
            if exc.code != "NoSuchUpload":
                logger.error("OSS: could not abort the multipart upload of %s: %s", self.uri(key), exc)

    # -- downloads ---------------------------------------------------------------------------------------
    def download(
        self,
        where: str,
        dest_path: str | os.PathLike[str],
        *,
        max_bytes: int | None = None,
        sha256: str = "",
    ) -> DownloadedObject:
        """Fetch ``where`` (an oss:// URI or a key) to ``dest_path``: capped, checked, renamed into place."""
        bucket, key = self._bucket_and_key(where)
        uri = oss_uri(bucket, key)
        limit = self.settings.max_download_bytes if max_bytes is None else max_bytes
        dest = Path(dest_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        return self._retrying("read", uri, lambda: self._download_once(bucket, key, uri, dest, limit, sha256))

    def _download_once(
        self, bucket: str, key: str, uri: str, dest: Path, limit: int, expected_sha: str
    ) -> DownloadedObject:
        result = self.client.get_object(oss.GetObjectRequest(bucket=bucket, key=key))
        body = result.body
        try:
            size = int(result.content_length or 0)
            if size > limit:
                raise OssIntegrityError(f"{uri} is {size} bytes, more than the {limit} allowed.")
            stored_sha = (result.metadata or {}).get(META_SHA256, "")
            crc_header = result.headers.get("x-oss-hash-crc64ecma") if result.headers else None
            want_sha = expected_sha or stored_sha
            crc = _crc64() if crc_header and not want_sha else None
            digest = hashlib.sha256()
            fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
            try:
                written = 0
                with os.fdopen(fd, "wb") as out:
                    for chunk in body.iter_bytes(block_size=1 * MiB):
                        written += len(chunk)
                        if written > limit:
                            raise OssIntegrityError(f"{uri} is larger than the {limit} bytes allowed.")
                        digest.update(chunk)
                        if crc is not None:
                            crc.update(chunk)
                        out.write(chunk)
                _check_integrity(uri, size, written, digest.hexdigest(), want_sha, crc, crc_header)
                # No fsync: the file is read back by this process at once; atomicity is the rename's.
                os.replace(tmp_name, dest)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
        finally:
            body.close()
        return DownloadedObject(path=dest, size=written, sha256=digest.hexdigest())

    def read_bytes(self, where: str, *, max_bytes: int = 16 * MiB) -> bytes:
        """A small object's bytes (a report), capped and checked like :meth:`download`."""
        with tempfile.TemporaryDirectory(prefix="mlab-oss-") as directory:
            return self.download(where, Path(directory) / "object", max_bytes=max_bytes).path.read_bytes()

    # -- listing, heads, deletes -------------------------------------------------------------------------
    def head(self, where: str) -> ObjectInfo | None:
        bucket, key = self._bucket_and_key(where)

        def head_once() -> ObjectInfo | None:
            try:
                found = self.client.head_object(oss.HeadObjectRequest(bucket=bucket, key=key))
            except Exception as exc:
                translated = self._translate(exc, "read", oss_uri(bucket, key))
                if isinstance(translated, OssNotFound):
                    return None
                raise translated from None
            return ObjectInfo(
                key=key,
                size=int(found.content_length or 0),
                last_modified=found.last_modified,
                etag=found.etag or "",
                metadata=dict(found.metadata or {}),
            )

        return self._retrying("read", oss_uri(bucket, key), head_once)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (a key prefix, or an oss:// URI), in key order."""
        bucket, key_prefix = self._bucket_and_key(prefix) if prefix else (self.bucket, self.prefix + "/")
        token: str | None = None
        while True:
            request = oss.ListObjectsV2Request(
                bucket=bucket, prefix=key_prefix, continuation_token=token, max_keys=1000
            )
            page = self._retrying("list", oss_uri(bucket, key_prefix), partial(self.client.list_objects_v2, request))
            for item in page.contents or []:
                yield ObjectInfo(
                    key=item.key, size=int(item.size or 0), last_modified=item.last_modified, etag=item.etag or ""
                )
            if not page.is_truncated:
                return
            token = page.next_continuation_token

    def delete(self, where: str) -> None:
        """Delete one object (deleting one that is not there is not an error, as on OSS)."""
        bucket, key = self._bucket_and_key(where)
        self._retrying(
            "delete",
            oss_uri(bucket, key),
            lambda: self.client.delete_object(oss.DeleteObjectRequest(bucket=bucket, key=key)),
        )

    def incomplete_uploads(self, prefix: str = "") -> builtins.list[tuple[str, str, dt.datetime | None]]:
        """(key, upload id, initiated) of every multipart upload under ``prefix`` neither completed nor aborted."""
        key_prefix = prefix or self.prefix + "/"
        found: list[tuple[str, str, dt.datetime | None]] = []
        key_marker = upload_marker = None
        while True:
            request = oss.ListMultipartUploadsRequest(
                bucket=self.bucket, prefix=key_prefix, key_marker=key_marker, upload_id_marker=upload_marker
            )
            page = self._retrying("list", self.uri(key_prefix), partial(self.client.list_multipart_uploads, request))
            found += [(u.key, u.upload_id, u.initiated) for u in page.uploads or []]
            if not page.is_truncated:
                return found
            key_marker, upload_marker = page.next_key_marker, page.next_upload_id_marker

    def cleanup_runs(
        self, older_than: dt.timedelta, *, now: dt.datetime | None = None, dry_run: bool = False
    ) -> CleanupReport:
        """Delete the objects of every run under ``<prefix>/runs/`` whose newest object is older than
        ``older_than``, and abort multipart uploads under the prefix started before then. Code and other
        objects are left alone."""
        cutoff = (now or dt.datetime.now(dt.UTC)) - older_than
        runs_prefix = self.key("runs") + "/"
        by_run: dict[str, list[ObjectInfo]] = {}
        for item in self.list(runs_prefix):
            run = item.key[len(runs_prefix) :].split("/", 1)[0]
            by_run.setdefault(run, []).append(item)
        stale = {
            run: items
            for run, items in by_run.items()
            if all(i.last_modified is not None and i.last_modified < cutoff for i in items)
        }
        objects = sum(len(items) for items in stale.values())
        size = sum(i.size for items in stale.values() for i in items)
        aborted = 0
        if not dry_run:
            for items in stale.values():
                for item in items:
                    self.delete(item.key)
            for key, upload_id, initiated in self.incomplete_uploads():
                if initiated is not None and initiated < cutoff:
                    self._abort(key, upload_id)
                    aborted += 1
        return CleanupReport(runs=sorted(stale, key=_run_order), objects=objects, bytes=size, aborted_uploads=aborted)

    # -- pai_check ---------------------------------------------------------------------------------------
    def probe(self) -> builtins.list[ProbeStep]:
        """Put, read back and delete one small object under ``<prefix>/probe/``; one step per permission.
        Stops at the first refusal (a later step needs the earlier one), and touches nothing else."""
        key = self.key("probe", f"mlab-check-{secrets.token_hex(8)}")
        uri = self.uri(key)
        payload = b"mlab pai_check probe " + secrets.token_hex(8).encode()
        steps: list[ProbeStep] = []

        def step(permission: str, what: str, action: Callable[[], Any]) -> bool:
            try:
                action()
            except OssError as exc:
                steps.append(ProbeStep(permission, False, str(exc)))
                return False
            steps.append(ProbeStep(permission, True, f"{what} {uri}"))
            return True

        def read_back() -> None:
            if self.read_bytes(uri, max_bytes=1024) != payload:
                raise OssIntegrityError(f"{uri} read back different bytes than were written.")

        if step("oss:PutObject", "wrote", lambda: self.upload_bytes(payload, key, content_type="text/plain")):
            step("oss:GetObject", "read back", read_back)
            step("oss:DeleteObject", "deleted", lambda: self.delete(key))
        return steps


def _run_order(run: str) -> tuple[int, str]:
    return (int(run), run) if run.isdigit() else (1 << 62, run)


def _crc64() -> Any:
    # The OSS SDK's CRC64-ECMA (crcmod's C extension underneath): the checksum OSS reports for each object.
    from alibabacloud_oss_v2.crc import Crc64  # the SDK's checksum module, loaded on the first transfer only

    class _Update:
        def __init__(self) -> None:
            self._crc = Crc64(0)

        def update(self, data: bytes) -> None:
            self._crc.write(data)

        def value(self) -> str:
            return str(self._crc.sum64())

    return _Update()


def _check_integrity(
    uri: str, expected_size: int, written: int, sha: str, want_sha: str, crc: Any, crc_header: str | None
) -> None:
    if written != expected_size:
        raise _Transient(f"{uri} arrived with {written} of its {expected_size} bytes")
    if want_sha and sha != want_sha:
        raise OssIntegrityError(f"{uri} does not have the expected sha256 ({sha[:12]}… instead of {want_sha[:12]}…).")
    if crc is not None and crc.value() != crc_header:
        raise _Transient(f"the CRC64 of {uri} does not match what OSS reports")
