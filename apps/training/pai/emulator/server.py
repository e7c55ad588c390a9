"""The PAI emulator's HTTP side: PAI's routes, the signature check, Alibaba's error bodies, output channels,
and the loopback-only control API."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import shutil
import threading
import time
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .. import signing
from ..client import API_VERSION
from .faults import apply_fault_spec
from .jobs import LABEL, LOG_PREFIX, InvalidJobBody, JobNotFound, iso

if TYPE_CHECKING:
    from .service import PaiEmulator

logger = logging.getLogger("apps.training.pai.emulator")

SERVER_HEADER = "Mlab-PAI-Emulator/1.0 (an emulator of Alibaba Cloud PAI, not PAI)"
MAX_BODY_BYTES = 16 * 1024 * 1024
LOOPBACK = ("127.0.0.1", "::1")
_JOB_ID = r"(?P<job_id>[A-Za-z0-9_-]{1,64})"
_ALGORITHM = r"(?P<algorithm_id>[A-Za-z0-9_-]{1,64})"
_VERSION = r"(?P<version>[A-Za-z0-9_.-]{1,64})"
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"^/api/v1/algorithms/?$"), "CreateAlgorithm"),
    ("GET", re.compile(r"^/api/v1/algorithms/?$"), "ListAlgorithms"),
    ("POST", re.compile(rf"^/api/v1/algorithms/{_ALGORITHM}/versions/{_VERSION}$"), "CreateAlgorithmVersion"),
    ("GET", re.compile(rf"^/api/v1/algorithms/{_ALGORITHM}/versions/?$"), "ListAlgorithmVersions"),
    ("GET", re.compile(rf"^/api/v1/algorithms/{_ALGORITHM}/versions/{_VERSION}$"), "GetAlgorithmVersion"),
    ("POST", re.compile(r"^/api/v1/trainingjobs/?$"), "CreateTrainingJob"),
    ("GET", re.compile(r"^/api/v1/trainingjobs/?$"), "ListTrainingJobs"),
    ("GET", re.compile(rf"^/api/v1/trainingjobs/{_JOB_ID}$"), "GetTrainingJob"),
    ("PUT", re.compile(rf"^/api/v1/trainingjobs/{_JOB_ID}/stop$"), "StopTrainingJob"),
    ("DELETE", re.compile(rf"^/api/v1/trainingjobs/{_JOB_ID}$"), "DeleteTrainingJob"),
    ("GET", re.compile(rf"^/api/v1/trainingjobs/{_JOB_ID}/logs$"), "ListTrainingJobLogs"),
)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        self.status, self.code, self.message = status, code, message
        super().__init__(f"{code}: {message}")


def labels_of(query: Mapping[str, str]) -> dict[str, str]:
    """ListTrainingJobs' Labels: a JSON object in the query string, as PAI's SDK sends it."""
    if not query.get("Labels"):
        return {}
    try:
        labels = json.loads(query["Labels"])
    except ValueError:
        labels = None
    if not isinstance(labels, dict):
        raise ApiError(400, "InvalidParameter", 'Labels must be a JSON object {"key": "value"}.')
    return {str(k): str(v) for k, v in labels.items()}


def time_of(query: Mapping[str, str], name: str) -> dt.datetime | None:
    """StartTime / EndTime: ISO 8601 in UTC (``2024-03-01T08:00:00Z``, fractions allowed)."""
    text = query.get(name)
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "InvalidParameter", f"{name} must be ISO 8601, e.g. 2024-03-01T08:00:00Z.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def form_of(body: bytes) -> dict[str, str]:
    """A formData body (CreateAlgorithm, CreateAlgorithmVersion send their fields so)."""
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise ApiError(400, "InvalidParameter", "The form body is not UTF-8.") from None


def page_of(query: Mapping[str, str], *, default_size: int, max_size: int) -> tuple[int, int]:
    try:
        page = int(query.get("PageNumber") or 1)
        size = int(query.get("PageSize") or default_size)
    except ValueError:
        raise ApiError(400, "InvalidParameter", "PageNumber and PageSize are whole numbers.") from None
    if page < 1 or not 1 <= size <= max_size:
        raise ApiError(400, "InvalidParameter", f"PageNumber is at least 1 and PageSize between 1 and {max_size}.")
    return page, size


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: PaiEmulator):
        self.emulator = emulator
        self._inflight = 0
        self._idle = threading.Condition()
        super().__init__(address, _Handler)

    def begin(self) -> None:
        with self._idle:
            self._inflight += 1

    def end(self) -> None:
        with self._idle:
            self._inflight -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> None:
        """Let requests being answered (a delayed one, say) finish, for at most ``timeout`` seconds."""
        with self._idle:
            self._idle.wait_for(lambda: self._inflight == 0, timeout=timeout)


class _Handler(BaseHTTPRequestHandler):
    server: EmulatorServer
    server_version = SERVER_HEADER
    sys_version = ""
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle on, a keep-alive client waits ~40 ms for each answer.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s %s", LOG_PREFIX, self.address_string(), format % args)

    # -- dispatch --------------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        self.server.begin()
        try:
            self._answer(method)
        finally:
            self.server.end()

    def _answer(self, method: str) -> None:
        started = time.monotonic()
        parts = urlsplit(self.path)
        try:
            body = self._read_body()
            if parts.path.startswith("/api/"):
                status, payload, action = self._api(method, parts.path, parts.query, body)
            elif parts.path.startswith("/outputs/") and method == "GET":
                return self._serve_output(parts.path)
            elif parts.path.startswith("/_emulator/"):
                status, payload, action = self._control(method, parts.path, body) + ("EmulatorControl",)
            else:
                raise ApiError(
                    404, "InvalidApi.NotFound", "Specified api is not found, please check your url and method."
                )
        except ApiError as exc:
            status, payload, action = exc.status, self._error_body(exc.code, exc.message), "-"
        except JobNotFound as exc:
            status, payload, action = 404, self._error_body("TrainingJobNotFound", str(exc)), "-"
        except InvalidJobBody as exc:
            status, payload, action = 400, self._error_body("InvalidParameter", str(exc)), "-"
        except signing.SignatureRejected as exc:
            status, payload, action = exc.status, self._error_body(exc.code, exc.message), "-"
        except Exception:
            logger.exception("%s %s %s broke", LOG_PREFIX, method, parts.path)
            status, payload, action = 500, self._error_body("InternalError", f"{LABEL}: an internal error."), "-"
        self._send_json(status, payload)
        logger.info(
            "%s %s %s %s → %d in %.0f ms",
            LOG_PREFIX,
            method,
            parts.path,
            action,
            status,
            1000 * (time.monotonic() - started),
        )

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(400, "InvalidParameter", "Content-Length is not a number.") from None
        if length > MAX_BODY_BYTES:
            raise ApiError(413, "RequestEntityTooLarge", f"The body is larger than {MAX_BODY_BYTES} bytes.")
        return self.rfile.read(length) if length else b""

    def _route(self, method: str, path: str) -> tuple[str, dict[str, str]]:
        for route_method, pattern, action in ROUTES:
            match = pattern.match(path)
            if match and route_method == method:
                return action, match.groupdict()
        raise ApiError(404, "InvalidApi.NotFound", "Specified api is not found, please check your url and method.")

    def _api(self, method: str, path: str, raw_query: str, body: bytes) -> tuple[int, dict[str, Any], str]:
        emulator = self.server.emulator
        action, args = self._route(method, path)
        headers = dict(self.headers.items())
        emulator.verify(method=method, path=path, raw_query=raw_query, headers=headers, body=body)
        lowered = {k.lower(): v for k, v in headers.items()}
        if lowered.get("x-acs-action") != action:
            raise ApiError(
                400, "InvalidAction", f"x-acs-action is {lowered.get('x-acs-action')!r}; this path is {action}."
            )
        if lowered.get("x-acs-version") != API_VERSION:
            raise ApiError(400, "InvalidVersion", f"x-acs-version must be {API_VERSION}.")

        if emulator.faults.denied(action):
            raise ApiError(
                403,
                "Forbidden.RAM",
                f"The RAM user is not authorized to perform paistudio:{action} in workspace {emulator.workspace_id}.",
            )
        error_status = emulator.faults.take_error(action)
        if error_status is not None:
            raise ApiError(error_status, "InternalError", f"{LABEL}: failing this {action} as it was told to.")
        delay = emulator.faults.take_delay(action)
        if delay and delay[1] == "before":
            time.sleep(delay[0])
            raise ApiError(504, "GatewayTimeout", f"{LABEL}: {action} stalled and was dropped as it was told to.")
        result = self._perform(action, args, dict(parse_qsl(raw_query, keep_blank_values=True)), body)
        if delay:
            time.sleep(delay[0])
        return 200, result, action

    def _perform(self, action: str, args: dict[str, str], query: dict[str, str], body: bytes) -> dict[str, Any]:
        emulator = self.server.emulator
        base = emulator.endpoint
        if action == "CreateTrainingJob":
            try:
                parsed = json.loads(body or b"null")
            except ValueError:
                raise ApiError(400, "InvalidParameter", "The body is not JSON.") from None
            job = emulator.create(parsed)
            return self._ok(TrainingJobId=job.job_id)
        if action == "ListTrainingJobs":
            page, size = page_of(query, default_size=20, max_size=100)
            try:
                jobs = emulator.list_jobs(
                    workspace_id=query.get("WorkspaceId"),
                    labels=labels_of(query),
                    status=query.get("Status"),
                    name=query.get("TrainingJobName"),
                    job_id=query.get("TrainingJobId"),
                    algorithm_name=query.get("AlgorithmName"),
                    start=time_of(query, "StartTime"),
                    end=time_of(query, "EndTime"),
                    sort_by=query.get("SortBy"),
                    order=query.get("Order"),
                )
            except ValueError as exc:
                raise ApiError(400, "InvalidParameter", str(exc)) from None
            shown = jobs[(page - 1) * size : page * size]
            return self._ok(TrainingJobs=[job.describe(base, listed=True) for job in shown], TotalCount=len(jobs))
        if action == "GetTrainingJob":
            job = emulator.job(args["job_id"])
            with job.lock:
                job.reads += 1
            return self._ok(**job.describe(base))
        if action == "DeleteTrainingJob":
            emulator.delete_job(args["job_id"])
            return self._ok()
        if action == "StopTrainingJob":
            emulator.stop_job(args["job_id"])
            return self._ok()
        if action.endswith(("Algorithm", "Algorithms", "AlgorithmVersion", "AlgorithmVersions")):
            return self._algorithms(action, args, query, body)
        if action == "ListTrainingJobLogs":
            job = emulator.job(args["job_id"])
            page, size = page_of(query, default_size=100, max_size=1000)
            with job.lock:
                lines = list(job.log)
            return self._ok(Logs=lines[(page - 1) * size : page * size], TotalCount=str(len(lines)))
        raise ApiError(404, "InvalidApi.NotFound", action)

    def _algorithms(self, action: str, args: dict[str, str], query: dict[str, str], body: bytes) -> dict[str, Any]:
        registry = self.server.emulator.algorithms
        workspace = self.server.emulator.workspace_id
        try:
            if action == "CreateAlgorithm":
                form = form_of(body)
                if form.get("WorkspaceId") and form["WorkspaceId"] != workspace:
                    raise ApiError(400, "InvalidParameter", f"WorkspaceId {form['WorkspaceId']} does not exist.")
                created = registry.create(
                    name=form.get("AlgorithmName", ""),
                    workspace_id=workspace,
                    display_name=form.get("DisplayName", ""),
                    description=form.get("AlgorithmDescription", ""),
                )
                return self._ok(AlgorithmId=created.algorithm_id)
            if action == "ListAlgorithms":
                page, size = page_of(query, default_size=20, max_size=100)
                found = registry.find(
                    workspace_id=query.get("WorkspaceId") or workspace,
                    name=query.get("AlgorithmName"),
                    algorithm_id=query.get("AlgorithmId"),
                )
                shown = found[(page - 1) * size : page * size]
                return self._ok(Algorithms=[_algorithm(a) for a in shown], TotalCount=len(found))
            algorithm = registry.get(args["algorithm_id"])
            if action == "CreateAlgorithmVersion":
                raw = form_of(body).get("AlgorithmSpec") or "{}"
                try:
                    spec = json.loads(raw)
                except ValueError:
                    raise ApiError(400, "InvalidParameter", "AlgorithmSpec is not JSON.") from None
                registry.add_version(algorithm.algorithm_id, args["version"], spec)
                return self._ok(AlgorithmId=algorithm.algorithm_id, AlgorithmVersion=args["version"])
            if action == "ListAlgorithmVersions":
                versions = [_version(algorithm, v) for v in sorted(algorithm.versions)]
                return self._ok(AlgorithmVersions=versions, TotalCount=len(versions))
            if args["version"] not in algorithm.versions:
                raise ApiError(404, "AlgorithmVersionNotFound", f"Version {args['version']} does not exist.")
            spec, _ = algorithm.versions[args["version"]]
            return self._ok(**_version(algorithm, args["version"]), AlgorithmSpec=spec)
        except LookupError as exc:
            raise ApiError(404, "AlgorithmNotFound", str(exc)) from None
        except ValueError as exc:
            raise ApiError(400, "InvalidParameter", str(exc)) from None

    # -- output channels -------------------------------------------------------------------------------
    def _serve_output(self, path: str) -> None:
        try:
            _, _, job_id, channel, *rest = path.split("/")
            job = self.server.emulator.job(job_id)
            channels = {ch.get("Name") for ch in job.body.get("OutputChannels") or []}
            if unquote(channel) not in channels:
                raise ApiError(404, "NoSuchKey", "The specified output does not exist.")
            root = (job.workdir / "output" / unquote(channel)).resolve()
            target = root.joinpath(*(unquote(p) for p in rest if p)).resolve()
            if not target.is_relative_to(root) or not root.is_dir() or not target.exists():
                raise ApiError(404, "NoSuchKey", "The specified output does not exist.")
        except (ValueError, JobNotFound):
            return self._send_json(404, self._error_body("NoSuchKey", "The specified output does not exist."))
        except ApiError as exc:
            return self._send_json(exc.status, self._error_body(exc.code, exc.message))
        if target.is_dir():
            files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
            return self._send_json(200, self._ok(Files=files))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(target.stat().st_size))
        self.send_header("X-Mlab-Emulator", "true")
        self.end_headers()
        with target.open("rb") as source:
            try:
                shutil.copyfileobj(source, self.wfile)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    # -- control (loopback only) -----------------------------------------------------------------------
    def _control(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if self.client_address[0] not in LOOPBACK:
            raise ApiError(403, "Forbidden", "The emulator's control API answers loopback clients only.")
        emulator = self.server.emulator
        faults = emulator.faults
        if path == "/_emulator/faults":
            if method == "DELETE":
                faults.clear()
            elif method == "POST":
                try:
                    apply_fault_spec(faults, body)
                except ValueError as exc:
                    raise ApiError(400, "InvalidParameter", str(exc)) from None
            elif method != "GET":
                raise ApiError(405, "MethodNotAllowed", "GET, POST or DELETE.")
            return 200, self._ok(Faults=faults.snapshot())
        if path == "/_emulator/jobs" and method == "GET":
            return 200, self._ok(Jobs=[job.describe(emulator.endpoint) for job in emulator.jobs()])
        match = re.match(rf"^/_emulator/jobs/{_JOB_ID}$", path)
        if match and method == "GET":
            job = emulator.job(match["job_id"])
            with job.lock:
                log = list(job.log)
            return 200, self._ok(Job=job.describe(emulator.endpoint), Log=log)
        raise ApiError(404, "InvalidApi.NotFound", "Unknown emulator control path.")

    # -- answers ---------------------------------------------------------------------------------------
    @staticmethod
    def _request_id() -> str:
        return f"EMULATOR-{uuid.uuid4()}".upper()

    def _ok(self, **fields: Any) -> dict[str, Any]:
        return {"RequestId": self._request_id(), **fields, "Emulator": LABEL}

    def _error_body(self, code: str, message: str) -> dict[str, Any]:
        return {
            "RequestId": self._request_id(),
            "HostId": self.headers.get("Host", "") if self.headers else "",
            "Code": code,
            "Message": message,
            "Recommend": "This answer comes from the Mlab PAI emulator, not from Alibaba Cloud.",
            "Emulator": LABEL,
        }

    def _send_json(self, status: int, payload: Mapping[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else None)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Mlab-Emulator", "true")
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a read timeout the emulator was told to cause): nothing to answer to.
            self.close_connection = True


def _algorithm(algorithm: Any) -> dict[str, Any]:
    return {
        "AlgorithmId": algorithm.algorithm_id,
        "AlgorithmName": algorithm.name,
        "AlgorithmProvider": "",
        "AlgorithmDescription": algorithm.description,
        "DisplayName": algorithm.display_name,
        "WorkspaceId": algorithm.workspace_id,
        "GmtCreateTime": iso(algorithm.created),
        "GmtModifiedTime": iso(algorithm.created),
    }


def _version(algorithm: Any, version: str) -> dict[str, Any]:
    created = iso(algorithm.versions[version][1])
    return {
        "AlgorithmId": algorithm.algorithm_id,
        "AlgorithmName": algorithm.name,
        "AlgorithmProvider": "",
        "AlgorithmVersion": version,
        "GmtCreateTime": created,
        "GmtModifiedTime": created,
    }
