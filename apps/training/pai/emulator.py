"""The PAI emulator: a loopback HTTP server that answers PAI TrainingService's API the way PAI does.

It implements the part of the paistudio API (2022-01-12) Mlab uses, on PAI's paths:

=====  ======================================  ====================
POST   /api/v1/trainingjobs                    CreateTrainingJob
GET    /api/v1/trainingjobs                    ListTrainingJobs (WorkspaceId, Labels as JSON, paging)
GET    /api/v1/trainingjobs/{id}               GetTrainingJob
PUT    /api/v1/trainingjobs/{id}/stop          StopTrainingJob
GET    /api/v1/trainingjobs/{id}/logs          ListTrainingJobLogs
=====  ======================================  ====================

Every API request must carry a valid ACS3-HMAC-SHA256 signature (checked by the same code that signs the
client's requests); a bad one gets Alibaba's error body with a 401 or 403. Jobs move through PAI's status
sequence (Creating → Created → Initializing → Submitted → Running → Succeed | Failed | Terminated, or
CreateFailed / InitializeFailed) and really train: the trainer runs in a subprocess in a PAI-shaped work
directory (see :mod:`.emulated_jobs`), and its output channel is served back over http at
``/outputs/<job id>/<channel>/<file>``.

It can be told to fail (:class:`~.emulated_jobs.Faults`, or ``POST /_emulator/faults`` from another
process): N error answers, a request held past the client's read timeout (before or after carrying it out),
CreateFailed, a job that fails while running. It says it is an emulator everywhere: the Server header,
an ``Emulator`` field in every answer, request ids, log lines.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from . import signing
from .client import API_VERSION, PaiClient
from .emulated_jobs import LABEL, LOG_PREFIX, EmulatedJob, Faults, JobRunner, default_trainer_command, new_job_id
from .statuses import PaiStatus

logger = logging.getLogger("apps.training.pai.emulator")

SERVER_HEADER = "Mlab-PAI-Emulator/1.0 (an emulator of Alibaba Cloud PAI, not PAI)"
MAX_BODY_BYTES = 16 * 1024 * 1024
LOOPBACK = ("127.0.0.1", "::1")
_JOB_ID = r"(?P<job_id>[A-Za-z0-9_-]{1,64})"
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"^/api/v1/trainingjobs/?$"), "CreateTrainingJob"),
    ("GET", re.compile(r"^/api/v1/trainingjobs/?$"), "ListTrainingJobs"),
    ("GET", re.compile(rf"^/api/v1/trainingjobs/{_JOB_ID}$"), "GetTrainingJob"),
    ("PUT", re.compile(rf"^/api/v1/trainingjobs/{_JOB_ID}/stop$"), "StopTrainingJob"),
    ("GET", re.compile(rf"^/api/v1/trainingjobs/{_JOB_ID}/logs$"), "ListTrainingJobLogs"),
)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        self.status, self.code, self.message = status, code, message
        super().__init__(f"{code}: {message}")


class _NonceLedger:
    """Nonces already used by a valid request, the most recent ones (a replay within the clock window fails)."""

    def __init__(self, size: int = 100_000):
        self._lock = threading.Lock()
        self._order: deque[str] = deque()
        self._seen: set[str] = set()
        self._size = size

    def seen(self, nonce: str) -> bool:
        with self._lock:
            if nonce in self._seen:
                return True
            self._seen.add(nonce)
            self._order.append(nonce)
            if len(self._order) > self._size:
                self._seen.discard(self._order.popleft())
            return False


class PaiEmulator:
    """The emulator: start it, point a :class:`~.client.PaiClient` at :attr:`endpoint`, stop it.

    ``trainer_command`` is a list of strings with placeholders ``{hyperparameters}``, ``{input}``,
    ``{input_dir}``, ``{output}``, ``{config_dir}``, ``{job_id}``; it may be changed between jobs.
    ``step_delay`` is the time each status before Running lasts.
    """

    def __init__(
        self,
        *,
        work_dir: str | Path,
        access_key_id: str = "emulator-access-key-id",
        access_key_secret: str | None = None,
        workspace_id: str = "emulator-workspace",
        host: str = "127.0.0.1",
        port: int = 0,
        trainer_command: Sequence[str] | None = None,
        step_delay: float = 0.05,
    ):
        self.work_dir = Path(work_dir)
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret or secrets.token_urlsafe(24)
        self.workspace_id = workspace_id
        self.trainer_command = list(trainer_command or default_trainer_command())
        self.step_delay = step_delay
        self.faults = Faults()
        self._host, self._port = host, port
        self._jobs: dict[str, EmulatedJob] = {}
        self._lock = threading.RLock()
        self._nonces = _NonceLedger()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> PaiEmulator:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._server = _Server((self._host, self._port), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="pai-emulator", daemon=True
        )
        self._thread.start()
        logger.info("%s listening on %s (workspace %s)", LOG_PREFIX, self.endpoint, self.workspace_id)
        return self

    def stop(self) -> None:
        """Stop serving and stop every job still running (their trainers are terminated)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.wait_idle(timeout=10)
            self._server.server_close()
            self._server = None
        for job in self.jobs():
            job.stop_requested.set()
        for job in self.jobs():
            job.done.wait(timeout=10)
        logger.info("%s stopped", LOG_PREFIX)

    def __enter__(self) -> PaiEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("The emulator is not started.")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def client(self, **options: Any) -> PaiClient:
        """A client signed with the emulator's keys (options: timeouts, retries, backoff)."""
        return PaiClient(self.endpoint, self.access_key_id, self.access_key_secret, self.workspace_id, **options)

    def settings(self) -> dict[str, str]:
        """The ``MLAB_PAI_*`` settings that point Mlab at this emulator."""
        return {
            "MLAB_PAI_ENDPOINT": self.endpoint,
            "MLAB_PAI_ACCESS_KEY_ID": self.access_key_id,
            "MLAB_PAI_ACCESS_KEY_SECRET": self.access_key_secret,
            "MLAB_PAI_WORKSPACE_ID": self.workspace_id,
        }

    # -- jobs ------------------------------------------------------------------------------------------
    def jobs(self) -> list[EmulatedJob]:
        with self._lock:
            return list(self._jobs.values())

    def job(self, job_id: str) -> EmulatedJob:
        with self._lock:
            try:
                return self._jobs[job_id]
            except KeyError:
                raise ApiError(404, "TrainingJobNotFound", f"Training job {job_id} does not exist.") from None

    def wait(self, job_id: str, timeout: float = 60.0) -> EmulatedJob:
        """Block until the job reaches a final status (tests); raise TimeoutError otherwise."""
        job = self.job(job_id)
        if not job.done.wait(timeout):
            raise TimeoutError(f"{LABEL}: job {job_id} is still {job.status} after {timeout} s")
        return job

    def create(self, body: Mapping[str, Any]) -> EmulatedJob:
        problems = validate_create_body(body, self.workspace_id)
        if problems:
            raise ApiError(400, "InvalidParameter", " ".join(problems))
        job_id = new_job_id()
        workdir = self.work_dir / job_id
        workdir.mkdir(parents=True)
        create_failed, fail_running = self.faults.take_job_faults()
        job = EmulatedJob(
            job_id=job_id,
            body=json.loads(json.dumps(body)),
            workdir=workdir,
            command_template=list(self.trainer_command),
            step_delay=self.step_delay,
            create_failed=create_failed,
            fail_running=fail_running,
        )
        with self._lock:
            self._jobs[job_id] = job
        JobRunner(job).start()
        logger.info("%s job %s created (%s)", LOG_PREFIX, job_id, body.get("TrainingJobName"))
        return job

    def stop_job(self, job_id: str) -> EmulatedJob:
        job = self.job(job_id)
        job.stop_requested.set()
        # PAI stops asynchronously; waiting a little lets a caller that stops then reads see Terminated.
        job.done.wait(timeout=2 + self.step_delay)
        return job

    def list_jobs(self, query: Mapping[str, str]) -> tuple[list[EmulatedJob], int]:
        workspace = query.get("WorkspaceId")
        if workspace and workspace != self.workspace_id:
            return [], 0
        labels: dict[str, str] = {}
        if query.get("Labels"):
            try:
                labels = json.loads(query["Labels"])
            except ValueError:
                labels = None  # type: ignore[assignment]
            if not isinstance(labels, dict):
                raise ApiError(400, "InvalidParameter", 'Labels must be a JSON object {"key": "value"}.')
        page, size = _page(query, default_size=20, max_size=100)
        chosen = [
            job
            for job in self.jobs()
            if all(job.labels.get(str(k)) == str(v) for k, v in labels.items())
            and (not query.get("Status") or job.status == query["Status"])
            and (not query.get("TrainingJobName") or job.body.get("TrainingJobName") == query["TrainingJobName"])
        ]
        chosen.sort(key=lambda j: j.created_at, reverse=True)
        return chosen[(page - 1) * size : page * size], len(chosen)

    def verify(self, *, method: str, path: str, raw_query: str, headers: Mapping[str, str], body: bytes) -> None:
        keys = {self.access_key_id: self.access_key_secret}
        signing.verify_request(
            method=method,
            path=path,
            raw_query=raw_query,
            headers=headers,
            body=body,
            secret_for=keys.get,
            nonce_seen=self._nonces.seen,
        )


def _page(query: Mapping[str, str], *, default_size: int, max_size: int) -> tuple[int, int]:
    try:
        page = int(query.get("PageNumber") or 1)
        size = int(query.get("PageSize") or default_size)
    except ValueError:
        raise ApiError(400, "InvalidParameter", "PageNumber and PageSize are whole numbers.") from None
    if page < 1 or not 1 <= size <= max_size:
        raise ApiError(400, "InvalidParameter", f"PageNumber is at least 1 and PageSize between 1 and {max_size}.")
    return page, size


def _list_of(body: Mapping[str, Any], key: str, fields: Sequence[str], problems: list[str], *, required=()) -> None:
    value = body.get(key)
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        problems.append(f"{key} must be a list of objects.")
        return
    for index, item in enumerate(value):
        for name in fields:
            if name in item and not isinstance(item[name], str):
                problems.append(f"{key}[{index}].{name} must be a string.")
        for name in required:
            if not item.get(name):
                problems.append(f"{key}[{index}].{name} is required.")


def validate_create_body(body: Any, workspace_id: str) -> list[str]:
    """What PAI would refuse in a CreateTrainingJob body, each problem naming its field."""
    if not isinstance(body, dict):
        return ["The body must be a JSON object."]
    problems: list[str] = []
    for name in ("TrainingJobName", "WorkspaceId", "AlgorithmName"):
        if not isinstance(body.get(name), str) or not body.get(name):
            problems.append(f"{name} is required.")
    if body.get("WorkspaceId") and body.get("WorkspaceId") != workspace_id:
        problems.append(f"WorkspaceId {body['WorkspaceId']} does not exist.")
    _list_of(body, "HyperParameters", ("Name", "Value"), problems, required=("Name",))
    _list_of(body, "InputChannels", ("Name", "InputUri"), problems, required=("Name", "InputUri"))
    _list_of(body, "OutputChannels", ("Name", "OutputUri"), problems, required=("Name",))
    _list_of(body, "Labels", ("Key", "Value"), problems, required=("Key",))
    scheduler = body.get("Scheduler") or {}
    seconds = scheduler.get("MaxRunningTimeInSeconds") if isinstance(scheduler, dict) else None
    if not isinstance(scheduler, dict) or (seconds is not None and (not isinstance(seconds, int) or seconds <= 0)):
        problems.append("Scheduler.MaxRunningTimeInSeconds must be a positive whole number.")
    return problems


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], emulator: PaiEmulator):
        self.emulator = emulator
        self._inflight = 0
        self._idle = threading.Condition()
        super().__init__(address, handler)

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
    server: _Server
    server_version = SERVER_HEADER
    sys_version = ""
    protocol_version = "HTTP/1.1"

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
            jobs, total = emulator.list_jobs(query)
            return self._ok(TrainingJobs=[job.describe(base) for job in jobs], TotalCount=total)
        if action == "GetTrainingJob":
            return self._ok(**emulator.job(args["job_id"]).describe(base))
        if action == "StopTrainingJob":
            emulator.stop_job(args["job_id"])
            return self._ok()
        if action == "ListTrainingJobLogs":
            job = emulator.job(args["job_id"])
            page, size = _page(query, default_size=100, max_size=1000)
            with job.lock:
                lines = list(job.log)
            return self._ok(Logs=lines[(page - 1) * size : page * size], TotalCount=str(len(lines)))
        raise ApiError(404, "InvalidApi.NotFound", action)

    # -- output channels -------------------------------------------------------------------------------
    def _serve_output(self, path: str) -> None:
        try:
            _, _, job_id, channel, *rest = path.split("/")
            job = self.server.emulator.job(job_id)
            root = (job.workdir / "output" / unquote(channel)).resolve()
            target = root.joinpath(*(unquote(p) for p in rest if p)).resolve()
            if not target.is_relative_to(root) or not root.is_dir() or not target.exists():
                raise ApiError(404, "NoSuchKey", "The specified output does not exist.")
        except ValueError:
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
                apply_fault_spec(faults, body)
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


def apply_fault_spec(faults: Faults, body: bytes) -> None:
    """Apply ``POST /_emulator/faults``: {"fail_next": {"count", "status", "action"}, "delay_next": {"seconds",
    "when", "action", "count"}, "create_failed": {"reason"}, "fail_running": {"reason", "after_seconds"},
    "clear": true}. Each key may also hold a list of such objects."""
    try:
        spec = json.loads(body or b"{}")
        if not isinstance(spec, dict):
            raise ValueError("expected a JSON object")
        if spec.get("clear"):
            faults.clear()
        calls = {
            "fail_next": faults.fail_next,
            "delay_next": faults.delay_next,
            "create_failed": faults.create_failed,
            "fail_running": faults.fail_running,
        }
        unknown = set(spec) - set(calls) - {"clear"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        for key, call in calls.items():
            entries = spec.get(key)
            for entry in entries if isinstance(entries, list) else [entries] if entries is not None else []:
                call(**entry)
    except (ValueError, TypeError) as exc:
        raise ApiError(400, "InvalidParameter", f"Bad fault specification: {exc}.") from None


__all__ = ["ApiError", "Faults", "PaiEmulator", "PaiStatus", "apply_fault_spec", "validate_create_body"]
