"""The PAI emulator's state and controls: its keys, its jobs, its faults, its HTTP server."""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import signing
from ..client import PaiClient
from ..credentials import StaticCredentials
from ..oss import OssSettings, OssStore
from .faults import Faults
from .jobs import (
    LABEL,
    LOG_PREFIX,
    EmulatedJob,
    InvalidJobBody,
    JobNotFound,
    JobRunner,
    default_trainer_command,
    new_job_id,
    validate_create_body,
)
from .oss import OssFaults, OssServer, OssState
from .program import AlgorithmRegistry, JobProgram, JobRole, program_from_spec
from .server import EmulatorServer

logger = logging.getLogger("apps.training.pai.emulator")
PREREGISTERED_ALGORITHM = "mlab-trainer"
# ListTrainingJobs without StartTime lists the jobs created in the last 7 days (the SDK documents the default).
LIST_DEFAULT_WINDOW = dt.timedelta(days=7)
SORT_KEYS = {
    "GmtCreateTime": lambda job: job.created_at,
    "GmtModifiedTime": lambda job: job.modified_at,
    "TrainingJobName": lambda job: str(job.body.get("TrainingJobName")),
    "Status": lambda job: job.status,
}


class NonceLedger:
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
        region: str = "cn-emulator",
        bucket: str = "mlab-emulator",
        oss_prefix: str = "mlab",
        security_token: str | None = None,
    ):
        self.work_dir = Path(work_dir)
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret or secrets.token_urlsafe(24)
        self.workspace_id = workspace_id
        self.trainer_command = list(trainer_command or default_trainer_command())
        self.step_delay = step_delay
        self.faults = Faults()
        self.region, self.bucket, self.oss_prefix = region, bucket, oss_prefix
        self.oss_faults = OssFaults()
        self.oss_state = OssState(self.work_dir / "oss", (bucket,))
        self.algorithms = AlgorithmRegistry()
        # A second key pair with an STS token, as STS AssumeRole hands out: (id, secret, token).
        self.sts_credentials = (
            "STS.emulator-" + secrets.token_hex(6),
            secrets.token_urlsafe(24),
            security_token or "emulator-sts-" + secrets.token_urlsafe(32),
        )
        self._oss_server: OssServer | None = None
        self._oss_thread: threading.Thread | None = None
        self._host, self._port = host, port
        self._jobs: dict[str, EmulatedJob] = {}
        self._lock = threading.RLock()
        self._nonces = NonceLedger()
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> PaiEmulator:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._server = EmulatorServer((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="pai-emulator", daemon=True
        )
        self._thread.start()
        self._oss_server = OssServer(
            (self._host, 0), state=self.oss_state, faults=self.oss_faults, region=self.region, keys=self.keys()
        )
        self._oss_thread = threading.Thread(
            target=self._oss_server.serve_forever, kwargs={"poll_interval": 0.1}, name="oss-emulator", daemon=True
        )
        self._oss_thread.start()
        logger.info(
            "%s listening on %s (workspace %s), its OSS on %s (bucket %s)",
            LOG_PREFIX,
            self.endpoint,
            self.workspace_id,
            self.oss_endpoint,
            self.bucket,
        )
        return self

    def stop(self) -> None:
        """Stop serving and stop every job still running (their trainers are terminated)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.wait_idle(timeout=10)
            self._server.server_close()
            self._server = None
        if self._oss_server is not None:
            self._oss_server.shutdown()
            self._oss_server.server_close()
            self._oss_server = None
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
        assert isinstance(host, str)  # an AF_INET server, bound to a host name or address
        return f"http://{host}:{port}"

    @property
    def oss_endpoint(self) -> str:
        if self._oss_server is None:
            raise RuntimeError("The emulator is not started.")
        return f"http://{self._oss_server.netloc}"

    def oss_uri(self, key: str) -> str:
        return f"oss://{self.bucket}/{key}"

    def keys(self) -> dict[str, tuple[str, str]]:
        """Access key id → (secret, STS token or ""): what the emulator's PAI and OSS accept."""
        sts_id, sts_secret, token = self.sts_credentials
        return {self.access_key_id: (self.access_key_secret, ""), sts_id: (sts_secret, token)}

    def client(self, **options: Any) -> PaiClient:
        """A client signed with the emulator's keys (options: timeouts, retries, backoff), reading oss://
        outputs from the emulator's OSS."""
        options.setdefault("oss", self.oss_store())
        return PaiClient(self.endpoint, self.access_key_id, self.access_key_secret, self.workspace_id, **options)

    def oss_store(self, **overrides: Any) -> Any:
        """Mlab's :class:`~apps.training.pai.oss.OssStore` pointed at the emulator's OSS (``overrides``:
        OssSettings fields, or ``credentials``)."""
        credentials = overrides.pop("credentials", None) or StaticCredentials(
            self.access_key_id, self.access_key_secret
        )
        fields = {
            "bucket": self.bucket,
            "region": self.region,
            "endpoint": self.oss_endpoint,
            "prefix": self.oss_prefix,
        }
        return OssStore(OssSettings(**{**fields, **overrides}), credentials)

    def settings(self) -> dict[str, Any]:
        """The ``MLAB_PAI_*`` and ``MLAB_OSS_*`` settings that point Mlab at this emulator.

        ``MLAB_PAI_ALGORITHM_NAME`` names the emulator's pre-registered ``mlab-trainer`` (which runs
        :attr:`trainer_command`); leave it empty to send an inline AlgorithmSpec with the trainer's code.
        """
        return {
            "MLAB_PAI_ENDPOINT": self.endpoint,
            "MLAB_PAI_ACCESS_KEY_ID": self.access_key_id,
            "MLAB_PAI_ACCESS_KEY_SECRET": self.access_key_secret,
            "MLAB_PAI_SECURITY_TOKEN": "",
            "MLAB_PAI_CREDENTIALS": "",
            "MLAB_PAI_WORKSPACE_ID": self.workspace_id,
            "MLAB_PAI_ALGORITHM_NAME": PREREGISTERED_ALGORITHM,
            "MLAB_OSS_BUCKET": self.bucket,
            "MLAB_OSS_REGION": self.region,
            "MLAB_OSS_ENDPOINT": self.oss_endpoint,
            "MLAB_OSS_PREFIX": self.oss_prefix,
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
                raise JobNotFound(f"Training job {job_id} does not exist.") from None

    def wait(self, job_id: str, timeout: float = 60.0) -> EmulatedJob:
        """Block until the job reaches a final status (tests); raise TimeoutError otherwise."""
        job = self.job(job_id)
        if not job.done.wait(timeout):
            raise TimeoutError(f"{LABEL}: job {job_id} is still {job.status} after {timeout} s")
        return job

    def create(self, body: Mapping[str, Any]) -> EmulatedJob:
        problems = validate_create_body(body, self.workspace_id)
        if problems:
            raise InvalidJobBody(" ".join(problems))
        program = self.program_for(body)
        job_id = new_job_id()
        workdir = self.work_dir / job_id
        workdir.mkdir(parents=True)
        create_failed, fail_running = self.faults.take_job_faults()
        job = EmulatedJob(
            job_id=job_id,
            body=json.loads(json.dumps(body)),
            workdir=workdir,
            program=program,
            role=JobRole(self.oss_state, self.oss_faults),
            step_delay=self.step_delay,
            create_failed=create_failed,
            fail_running=fail_running,
        )
        with self._lock:
            self._jobs[job_id] = job
        JobRunner(job).start()
        logger.info("%s job %s created (%s)", LOG_PREFIX, job_id, body.get("TrainingJobName"))
        return job

    def program_for(self, body: Mapping[str, Any]) -> JobProgram:
        """What a job of this body runs: its inline spec, a registered version's spec, or the pre-registered
        trainer. A registered algorithm's job may send only the hyper-parameters its version declares."""
        if body.get("AlgorithmSpec") is not None:
            return program_from_spec(body["AlgorithmSpec"])
        name, version = body.get("AlgorithmName"), body.get("AlgorithmVersion") or ""
        spec = self.algorithms.version_spec(self.workspace_id, str(name), str(version))
        if spec is None:
            if name == PREREGISTERED_ALGORITHM:
                return JobProgram(command=list(self.trainer_command), legacy=True)
            raise InvalidJobBody(
                f"Algorithm {name} version {version or '(none given)'} does not exist in the workspace."
            )
        program = program_from_spec(spec, declare=True)
        declared = {h.get("Name") for h in program.declared_hyperparameters or []}
        undeclared = sorted({h.get("Name") for h in body.get("HyperParameters") or []} - declared)
        if undeclared:
            raise InvalidJobBody(f"HyperParameters not declared by {name} {version}: {', '.join(undeclared)}.")
        required = sorted(
            h["Name"]
            for h in program.declared_hyperparameters or []
            if h.get("Required") and h.get("Name") not in {x.get("Name") for x in body.get("HyperParameters") or []}
        )
        if required:
            raise InvalidJobBody(f"HyperParameters required by {name} {version} are missing: {', '.join(required)}.")
        return program

    def stop_job(self, job_id: str) -> EmulatedJob:
        job = self.job(job_id)
        job.stop_requested.set()
        # PAI stops asynchronously; waiting a little lets a caller that stops then reads see Terminated.
        job.done.wait(timeout=2 + self.step_delay)
        return job

    def delete_job(self, job_id: str) -> None:
        """DeleteTrainingJob: a running job is stopped first; afterwards the job is unknown (404)."""
        job = self.stop_job(job_id) if not self.job(job_id).done.is_set() else self.job(job_id)
        job.done.wait(timeout=5)
        with self._lock:
            self._jobs.pop(job_id, None)

    def list_jobs(
        self,
        *,
        workspace_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        status: str | None = None,
        name: str | None = None,
        job_id: str | None = None,
        algorithm_name: str | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        sort_by: str | None = None,
        order: str | None = None,
    ) -> list[EmulatedJob]:
        """ListTrainingJobs' filters, as the service applies them: jobs of the workspace created between
        ``start`` (default: 7 days ago) and ``end`` (default: now) that carry every label and match the other
        filters, sorted by ``sort_by`` (GmtCreateTime by default) in ``order`` (desc by default)."""
        if workspace_id and workspace_id != self.workspace_id:
            return []
        moment = dt.datetime.now(dt.UTC)
        start = start or moment - LIST_DEFAULT_WINDOW
        end = end or moment
        chosen = [
            job
            for job in self.jobs()
            if all(job.labels.get(str(k)) == str(v) for k, v in (labels or {}).items())
            and (not status or job.status == status)
            and (not name or job.body.get("TrainingJobName") == name)
            and (not job_id or job.job_id == job_id)
            and (not algorithm_name or job.body.get("AlgorithmName") == algorithm_name)
            and start <= job.created_at <= end
        ]
        key = SORT_KEYS.get(sort_by or "GmtCreateTime")
        if key is None:
            raise ValueError(f"SortBy must be one of {', '.join(SORT_KEYS)}.")
        if (order or "desc").lower() not in ("asc", "desc"):
            raise ValueError("Order must be asc or desc.")
        return sorted(chosen, key=key, reverse=(order or "desc").lower() == "desc")

    def verify(self, *, method: str, path: str, raw_query: str, headers: Mapping[str, str], body: bytes) -> None:
        keys = self.keys()
        key_id = signing.verify_request(
            method=method,
            path=path,
            raw_query=raw_query,
            headers=headers,
            body=body,
            secret_for=lambda key: keys[key][0] if key in keys else None,
            nonce_seen=self._nonces.seen,
        )
        lowered = {name.lower(): value for name, value in headers.items()}
        token = keys[key_id][1]
        if token and lowered.get("x-acs-security-token") != token:
            raise signing.SignatureRejected("InvalidSecurityToken.Mismatch", 403, "The security token is not valid.")
        if not token and "x-acs-security-token" in lowered:
            raise signing.SignatureRejected("InvalidSecurityToken.Malformed", 403, "This key takes no security token.")
        own = self.endpoint.removeprefix("http://")
        if lowered.get("host") != own:
            # The Host is signed: a request signed for another endpoint must not be accepted here.
            raise signing.SignatureRejected(
                "InvalidHost", 400, f"The request was signed for host {lowered.get('host')!r}; this is {own}."
            )
