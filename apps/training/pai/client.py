"""A client of PAI's TrainingService API (paistudio, version 2022-01-12) over ``requests``.

Every request is signed (ACS3-HMAC-SHA256, fresh date and nonce per attempt). Requests are retried with
exponential backoff and jitter on 5xx answers, connection errors and timeouts, never on 4xx. Creating a job
is idempotent: the body carries the run id in a label, and before every attempt the client lists the
workspace's jobs by that label and returns the job it already made, so a timeout after PAI created the job
never makes a second one. The access key secret signs requests and nothing else: it is not logged, not in
an exception, not in ``repr``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from . import signing
from .credentials import CredentialsProvider, StaticCredentials, credentials_from_settings
from .errors import PaiConfigurationError, PaiError, PaiRefused, PaiUnavailable
from .request import RUN_LABEL, run_label
from .statuses import failure_message, is_finished, map_status  # noqa: F401  (the client's public surface)

logger = logging.getLogger(__name__)

API_VERSION = "2022-01-12"
JOBS_PATH = "/api/v1/trainingjobs"
ALGORITHMS_PATH = "/api/v1/algorithms"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


class _Transient(Exception):
    """An attempt that may succeed if repeated (5xx, connection error, timeout)."""


@dataclass(frozen=True)
class CreatedJob:
    job_id: str
    reused: bool  # True: the job already existed (an earlier attempt or an earlier call created it)


def _error_fields(response: requests.Response) -> tuple[str, str, str]:
    try:
        data = response.json()
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    code = str(data.get("Code") or data.get("code") or response.reason or "Error")
    message = str(data.get("Message") or data.get("message") or response.text[:500] or "no message")
    return code, message, str(data.get("RequestId") or data.get("requestId") or "")


class PaiClient:
    """PAI TrainingService over HTTP: create / get / list / stop training jobs, read their logs and output."""

    def __init__(
        self,
        endpoint: str,
        access_key_id: str,
        access_key_secret: str,
        workspace_id: str,
        *,
        security_token: str = "",
        credentials: CredentialsProvider | None = None,
        oss: Any = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        session: requests.Session | None = None,
    ):
        if "://" not in endpoint:
            endpoint = f"https://{endpoint}"
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PaiConfigurationError(f"The PAI endpoint must be an http(s) URL or a host name, not {endpoint!r}.")
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.netloc
        # Asked before every attempt: a provider of the default chain hands out rotated STS tokens.
        self.credentials = credentials or StaticCredentials(access_key_id, access_key_secret, security_token)
        self.oss = oss  # an apps.training.pai.oss.OssStore: reads oss:// outputs (None: http(s) only)
        self.workspace_id = workspace_id
        self.timeout = (connect_timeout, read_timeout)
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.session = session or requests.Session()

    @classmethod
    def from_settings(cls, settings: Any, **options: Any) -> PaiClient:
        """A client from ``MLAB_PAI_*`` settings (Django's settings object or any object with those names).

        Credentials come from :func:`~.credentials.credentials_from_settings`; with ``MLAB_OSS_BUCKET`` set, the
        client also reads ``oss://`` outputs through an :class:`~.oss.OssStore` signed with the same credentials.
        """
        missing = [name for name in ("MLAB_PAI_ENDPOINT", "MLAB_PAI_WORKSPACE_ID") if not getattr(settings, name, "")]
        try:
            credentials = credentials_from_settings(settings)
        except PaiConfigurationError as error:
            if not missing:
                raise
            keys = ("MLAB_PAI_ACCESS_KEY_ID", "MLAB_PAI_ACCESS_KEY_SECRET")
            missing += [name for name in keys if not getattr(settings, name, "")] or [str(error)]
        if missing:
            raise PaiConfigurationError(f"PAI is not configured: set {', '.join(missing)}.")
        if getattr(settings, "MLAB_OSS_BUCKET", "") and "oss" not in options:
            from .oss import OssStore  # the OSS SDK loads only where OSS is configured

            options["oss"] = OssStore.from_settings(settings, credentials=credentials)
        tuning = {
            "connect_timeout": "MLAB_PAI_CONNECT_TIMEOUT",
            "read_timeout": "MLAB_PAI_READ_TIMEOUT",
            "max_retries": "MLAB_PAI_MAX_RETRIES",
            "backoff": "MLAB_PAI_BACKOFF",
        }
        for option, name in tuning.items():
            if hasattr(settings, name):
                options.setdefault(option, getattr(settings, name))
        return cls(
            settings.MLAB_PAI_ENDPOINT, "", "", settings.MLAB_PAI_WORKSPACE_ID, credentials=credentials, **options
        )

    def __repr__(self) -> str:
        return (
            f"PaiClient(endpoint={self.base_url!r}, credentials={self.credentials.describe()!r}, "
            f"workspace_id={self.workspace_id!r})"
        )

    @property
    def access_key_id(self) -> str:
        return self.credentials.get().access_key_id

    # -- transport ---------------------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        *,
        action: str,
        query: Mapping[str, str],
        body: bytes | None,
        content_type: str = JSON,
    ) -> Any:
        payload = body or b""
        credentials = self.credentials.get()
        headers = signing.sign_request(
            method=method,
            host=self.host,
            path=path,
            query=query,
            body=payload,
            action=action,
            version=API_VERSION,
            access_key_id=credentials.access_key_id,
            access_key_secret=credentials.secret(),
            security_token=credentials.token(),
            content_type=content_type if body is not None else None,
        )
        headers["Accept"] = JSON
        # The query string is encoded by hand so that what is sent is byte for byte what was signed.
        url = f"{self.base_url}{signing.canonical_uri(path)}"
        if query:
            url += "?" + signing.canonical_query(query)
        try:
            response = self.session.request(method, url, data=body, headers=headers, timeout=self.timeout)
        except requests.Timeout as exc:
            raise _Transient(f"{action} timed out ({type(exc).__name__})") from None
        except requests.ConnectionError as exc:
            raise _Transient(f"{action} could not reach PAI ({type(exc).__name__})") from None
        if response.status_code >= 500:
            code, message, _ = _error_fields(response)
            raise _Transient(f"{action} failed on PAI's side ({response.status_code} {code}: {message})")
        if response.status_code >= 400:
            raise PaiRefused(response.status_code, *_error_fields(response))
        try:
            return response.json() if response.content else {}
        except ValueError:
            raise _Transient(f"{action} answered {response.status_code} with a body that is not JSON") from None

    def _delay(self, attempt: int) -> float:
        ceiling = min(self.max_backoff, self.backoff * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)

    def _call(
        self,
        method: str,
        path: str,
        *,
        action: str,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        retries: int | None = None,
        content_type: str = JSON,
    ) -> Any:
        retries = self.max_retries if retries is None else retries
        for attempt in range(retries + 1):
            try:
                result = self._send(
                    method, path, action=action, query=query or {}, body=body, content_type=content_type
                )
                logger.debug("PAI %s %s ok (attempt %d)", action, path, attempt + 1)
                return result
            except _Transient as exc:
                if attempt == retries:
                    raise PaiUnavailable(f"PAI is unavailable: {exc}; gave up after {attempt + 1} attempts.") from None
                delay = self._delay(attempt)
                logger.warning(
                    "PAI %s: %s; retrying in %.2fs (attempt %d of %d)", action, exc, delay, attempt + 1, retries + 1
                )
                time.sleep(delay)
        raise AssertionError("unreachable")

    # -- the API -----------------------------------------------------------------------------------------
    def create_training_job(self, body: Mapping[str, Any]) -> CreatedJob:
        """Create a job, or return the one this body's run already has (idempotent on the run-id label)."""
        run_id = run_label(body)
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        for attempt in range(self.max_retries + 1):
            existing = self.list_training_jobs({RUN_LABEL: run_id})
            if existing:
                job_id = existing[0]["TrainingJobId"]
                if len(existing) > 1:
                    logger.warning("PAI has %d jobs for run %s; using %s", len(existing), run_id, job_id)
                logger.info("PAI job %s already exists for run %s", job_id, run_id)
                return CreatedJob(job_id=job_id, reused=True)
            try:
                result = self._send("POST", JOBS_PATH, action="CreateTrainingJob", query={}, body=raw)
            except _Transient as exc:
                if attempt == self.max_retries:
                    raise PaiUnavailable(f"PAI is unavailable: {exc}; gave up after {attempt + 1} attempts.") from None
                delay = self._delay(attempt)
                logger.warning(
                    "PAI CreateTrainingJob for run %s: %s; checking for the job in %.2fs", run_id, exc, delay
                )
                time.sleep(delay)
                continue
            job_id = result.get("TrainingJobId")
            if not job_id:
                raise PaiUnavailable("PAI accepted the job but returned no TrainingJobId.")
            logger.info("PAI job %s created for run %s", job_id, run_id)
            return CreatedJob(job_id=job_id, reused=False)
        raise AssertionError("unreachable")

    def get_training_job(self, job_id: str) -> dict[str, Any]:
        """GetTrainingJob: the job as PAI describes it (Status, ReasonCode, ReasonMessage, OutputChannels…)."""
        return self._call("GET", f"{JOBS_PATH}/{job_id}", action="GetTrainingJob")

    def list_training_jobs(
        self, labels: Mapping[str, str] | None = None, *, page_size: int = 50
    ) -> list[dict[str, Any]]:
        """ListTrainingJobs of the workspace carrying all of ``labels``, every page."""
        query = {"WorkspaceId": self.workspace_id, "PageSize": str(page_size)}
        if labels:
            query["Labels"] = json.dumps(dict(labels), separators=(",", ":"), sort_keys=True)
        jobs: list[dict[str, Any]] = []
        for page in range(1, 1001):
            result = self._call("GET", JOBS_PATH, action="ListTrainingJobs", query={**query, "PageNumber": str(page)})
            batch = result.get("TrainingJobs") or []
            jobs.extend(batch)
            if not batch or len(jobs) >= int(result.get("TotalCount") or 0):
                break
        return jobs

    def stop_training_job(self, job_id: str) -> None:
        """StopTrainingJob. Stopping a job that already finished is not an error."""
        self._call("PUT", f"{JOBS_PATH}/{job_id}/stop", action="StopTrainingJob")

    def get_training_job_logs(self, job_id: str, *, page_size: int = 500) -> list[str]:
        """ListTrainingJobLogs: the job's log lines (what the trainer printed), oldest first."""
        lines: list[str] = []
        for page in range(1, 1001):
            result = self._call(
                "GET",
                f"{JOBS_PATH}/{job_id}/logs",
                action="ListTrainingJobLogs",
                query={"PageNumber": str(page), "PageSize": str(page_size)},
            )
            batch = result.get("Logs") or []
            lines.extend(batch)
            if not batch or len(lines) >= int(result.get("TotalCount") or 0):
                break
        return lines

    # -- algorithms (pai_register_algorithm) ------------------------------------------------------------
    def _form(self, fields: Mapping[str, str]) -> bytes:
        # PAI takes these calls as form fields (its SDK sends them so); values encoded as in a signature.
        return signing.canonical_query({k: v for k, v in fields.items() if v}).encode()

    def list_algorithms(self, name: str) -> list[dict[str, Any]]:
        """ListAlgorithms of the workspace named ``name`` (at most one: names are unique in a workspace)."""
        query = {"WorkspaceId": self.workspace_id, "AlgorithmName": name, "PageSize": "50", "PageNumber": "1"}
        return list(self._call("GET", ALGORITHMS_PATH, action="ListAlgorithms", query=query).get("Algorithms") or [])

    def create_algorithm(self, name: str, *, display_name: str = "", description: str = "") -> str:
        """CreateAlgorithm in the workspace; returns its AlgorithmId."""
        body = self._form(
            {
                "AlgorithmName": name,
                "DisplayName": display_name,
                "AlgorithmDescription": description,
                "WorkspaceId": self.workspace_id,
            }
        )
        result = self._call("POST", ALGORITHMS_PATH, action="CreateAlgorithm", body=body, content_type=FORM)
        return str(result["AlgorithmId"])

    def list_algorithm_versions(self, algorithm_id: str) -> list[dict[str, Any]]:
        path = f"{ALGORITHMS_PATH}/{algorithm_id}/versions"
        query = {"PageSize": "100", "PageNumber": "1"}
        return list(self._call("GET", path, action="ListAlgorithmVersions", query=query).get("AlgorithmVersions") or [])

    def get_algorithm_version(self, algorithm_id: str, version: str) -> dict[str, Any]:
        return self._call("GET", f"{ALGORITHMS_PATH}/{algorithm_id}/versions/{version}", action="GetAlgorithmVersion")

    def create_algorithm_version(self, algorithm_id: str, version: str, spec: Mapping[str, Any]) -> None:
        """CreateAlgorithmVersion: ``spec`` is PAI's AlgorithmSpec (see :func:`~.request.algorithm_spec`)."""
        body = self._form({"AlgorithmSpec": json.dumps(spec, separators=(",", ":"), ensure_ascii=False)})
        path = f"{ALGORITHMS_PATH}/{algorithm_id}/versions/{version}"
        self._call("POST", path, action="CreateAlgorithmVersion", body=body, content_type=FORM)

    # -- output -----------------------------------------------------------------------------------------
    def download_output(self, uri: str, dest_path: str | os.PathLike[str], *, max_bytes: int = 2**31) -> Path:
        """Fetch one file of a job's output channel to ``dest_path``.

        Streamed to a temporary file beside the destination and renamed into place, so the destination is
        either absent or complete. oss:// goes through :attr:`oss` (capped, checked, atomic: see
        :meth:`~.oss.OssStore.download`); http(s) through ``requests``.
        """
        scheme = urlsplit(uri).scheme
        if scheme == "oss":
            if self.oss is None:
                raise PaiConfigurationError(
                    f"The job's output is on OSS ({uri}) and OSS is not configured: set MLAB_OSS_BUCKET, "
                    "MLAB_OSS_REGION and MLAB_OSS_ENDPOINT."
                )
            return self.oss.download(uri, dest_path, max_bytes=max_bytes).path
        if scheme not in ("http", "https"):
            raise PaiError(f"Cannot read a job's output from a {scheme or 'schemeless'} URI; expected http(s).")
        dest = Path(dest_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(self.max_retries + 1):
            try:
                return self._download_once(uri, dest, max_bytes)
            except _Transient as exc:
                if attempt == self.max_retries:
                    raise PaiUnavailable(f"Could not download the output: {exc}.") from None
                time.sleep(self._delay(attempt))
        raise AssertionError("unreachable")

    def _download_once(self, uri: str, dest: Path, max_bytes: int) -> Path:
        try:
            response = self.session.get(uri, stream=True, timeout=self.timeout)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise _Transient(f"{type(exc).__name__} while fetching {uri}") from None
        with response:
            if response.status_code >= 500:
                raise _Transient(f"{uri} answered {response.status_code}")
            if response.status_code >= 400:
                raise PaiRefused(response.status_code, *_error_fields(response))
            fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
            try:
                written = 0
                with os.fdopen(fd, "wb") as out:
                    for chunk in response.iter_content(chunk_size=1 << 20):
                        written += len(chunk)
                        if written > max_bytes:
                            raise PaiError(f"The output at {uri} is larger than {max_bytes} bytes.")
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp_name, dest)
            except requests.RequestException as exc:
                Path(tmp_name).unlink(missing_ok=True)
                raise _Transient(f"{type(exc).__name__} while reading {uri}") from None
            except OSError as exc:
                Path(tmp_name).unlink(missing_ok=True)
                raise PaiError(f"Could not write the output to {dest}: {exc.strerror or exc}.") from None
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
        return dest


def job_state(job: Mapping[str, Any]) -> tuple[str, str, str]:
    """(our status, stage, error in plain words) of a GetTrainingJob answer."""
    status, stage = map_status(str(job.get("Status", "")))
    return status, stage, failure_message(job)


__all__ = [
    "API_VERSION",
    "CreatedJob",
    "PaiClient",
    "PaiConfigurationError",
    "PaiError",
    "PaiRefused",
    "PaiUnavailable",
    "failure_message",
    "is_finished",
    "job_state",
    "map_status",
]
