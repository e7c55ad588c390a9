"""The PAI emulator's jobs: what a create must hold, and a job's life (PAI's status sequence, the trainer in a
subprocess).

A job lives in a work directory laid out as PAI lays out a training container, so a trainer written for PAI
runs unchanged::

    <work dir>/<job id>/input/config/hyperparameters.json   {name: value}, every value a string
    <work dir>/<job id>/input/data/<channel>/<file>         each input channel, fetched from its InputUri
    <work dir>/<job id>/code/                               CodeDir unpacked (the /ml/usercode of a container)
    <work dir>/<job id>/output/<channel>/                   what the trainer writes; uploaded to the channel's
                                                            oss:// OutputUri when the job succeeds
    <work dir>/<job id>/job.log                             the trainer's stdout and stderr

and the environment carries PAI's variables (PAI_CONFIG_DIR, PAI_HPS, PAI_INPUT_<CHANNEL>,
PAI_OUTPUT_<CHANNEL>, PAI_TRAINING_JOB_ID) and the job's Environments. The job's log lines are matched
against its MetricDefinitions and ProgressDefinitions (LatestMetrics, LatestProgress). Everything the
emulator adds to a log says it is the emulator.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import secrets
import shutil
import signal
import string
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import requests

from ..statuses import FINISHED, PaiStatus
from .label import LABEL, LOG_PREFIX
from .program import (
    InitializeError,
    JobProgram,
    JobRole,
    check_requirements,
    container_path,
    resolve_command,
    spec_problems,
    unpack_code,
)

logger = logging.getLogger("apps.training.pai.emulator")

REPO_ROOT = Path(__file__).resolve().parents[4]
MAX_LOG_LINES = 20_000
STOP_GRACE_SECONDS = 5.0
CHANNEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def default_trainer_command() -> list[str]:
    """What a PAI job of Mlab's algorithm runs: Mlab's trainer entry point."""
    return [
        sys.executable,
        "-m",
        "apps.training.trainer",
        "--hyperparameters",
        "{hyperparameters}",
        "--input",
        "{input}",
        "--output",
        "{output}",
    ]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@overload
def iso(moment: dt.datetime) -> str: ...
@overload
def iso(moment: None) -> None: ...
def iso(moment: dt.datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z" if moment else None


def new_job_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "train" + "".join(secrets.choice(alphabet) for _ in range(11))


class JobNotFound(LookupError):
    """No job has this id."""


class InvalidJobBody(ValueError):
    """A CreateTrainingJob body PAI would refuse; the message names each field."""


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
    for name in ("TrainingJobName", "WorkspaceId"):
        if not isinstance(body.get(name), str) or not body.get(name):
            problems.append(f"{name} is required.")
    if body.get("AlgorithmSpec") is not None and body.get("AlgorithmName"):
        problems.append("Give AlgorithmSpec or AlgorithmName (with AlgorithmVersion), not both.")
    elif body.get("AlgorithmSpec") is None and (
        not isinstance(body.get("AlgorithmName"), str) or not body.get("AlgorithmName")
    ):
        problems.append("AlgorithmName is required (or an inline AlgorithmSpec).")
    if body.get("AlgorithmSpec") is not None:
        problems += spec_problems(body["AlgorithmSpec"])
    environments = body.get("Environments")
    if environments is not None and (
        not isinstance(environments, dict) or not all(isinstance(v, str) for v in environments.values())
    ):
        problems.append("Environments must be an object of strings.")
    priority = body.get("Priority")
    if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 9):
        problems.append("Priority must be a whole number from 1 to 9.")
    requirements = body.get("PythonRequirements")
    if requirements is not None and (
        not isinstance(requirements, list) or not all(isinstance(r, str) for r in requirements)
    ):
        problems.append("PythonRequirements must be a list of strings.")
    if body.get("RoleArn") is not None and not str(body.get("RoleArn")).startswith("acs:ram::"):
        problems.append("RoleArn must be a RAM role ARN (acs:ram::<account>:role/<name>).")
    if body.get("WorkspaceId") and body.get("WorkspaceId") != workspace_id:
        problems.append(f"WorkspaceId {body['WorkspaceId']} does not exist.")
    _list_of(body, "HyperParameters", ("Name", "Value"), problems, required=("Name",))
    _list_of(body, "InputChannels", ("Name", "InputUri"), problems, required=("Name", "InputUri"))
    _list_of(body, "OutputChannels", ("Name", "OutputUri"), problems, required=("Name",))
    _list_of(body, "Labels", ("Key", "Value"), problems, required=("Key",))
    for key in ("InputChannels", "OutputChannels"):
        channels = body.get(key)
        if not isinstance(channels, list):
            channels = []
        names = [ch["Name"] for ch in channels if isinstance(ch, dict) and isinstance(ch.get("Name"), str)]
        # A channel name becomes a directory and an environment variable (PAI_INPUT_<NAME>).
        problems += [
            f"{key}: channel name {n!r} is not letters, digits and _." for n in names if not CHANNEL_RE.match(n)
        ]
        if len(set(names)) != len(names):
            problems.append(f"{key}: a channel name appears twice.")
    scheduler = body.get("Scheduler") or {}
    if not isinstance(scheduler, dict):
        problems.append("Scheduler must be an object.")
        scheduler = {}
    for name in ("MaxRunningTimeInSeconds", "MaxRunningTimeInMinutes"):
        value = scheduler.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            problems.append(f"Scheduler.{name} must be a positive whole number.")
    return problems


def time_limit(body: Mapping[str, Any]) -> float:
    """Seconds a job may run (0: no limit): the tighter of MaxRunningTimeInMinutes and …InSeconds."""
    scheduler = body.get("Scheduler") or {}
    limits = [float(scheduler["MaxRunningTimeInSeconds"])] if scheduler.get("MaxRunningTimeInSeconds") else []
    if scheduler.get("MaxRunningTimeInMinutes"):
        limits.append(60.0 * scheduler["MaxRunningTimeInMinutes"])
    return min(limits) if limits else 0.0


@dataclass
class EmulatedJob:
    """One training job as the emulator keeps it. Fields change under ``lock`` only."""

    job_id: str
    body: dict[str, Any]
    workdir: Path
    program: JobProgram
    role: JobRole | None
    step_delay: float
    create_failed: str | None = None
    fail_running: tuple[str, float] | None = None
    status: str = PaiStatus.CREATING
    reason_code: str = ""
    reason_message: str = ""
    created_at: dt.datetime = field(default_factory=now)
    modified_at: dt.datetime = field(default_factory=now)
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    transitions: list[dict[str, Any]] = field(default_factory=list)
    log: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_LOG_LINES))
    metrics: dict[str, tuple[float, str]] = field(default_factory=dict)  # name → (latest value, when)
    progress: tuple[float, str] | None = None
    reads: int = 0  # GetTrainingJob calls answered for this job
    process: subprocess.Popen[str] | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    stop_requested: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.transitions.append(self._transition(PaiStatus.CREATING, "", ""))
        self.note(f"job {self.job_id} accepted; status Creating")

    # -- state -----------------------------------------------------------------------------------------
    @staticmethod
    def _transition(status: str, code: str, message: str, start: str | None = None) -> dict[str, Any]:
        return {
            "Status": status,
            "StartTime": start or iso(now()),
            "EndTime": None,
            "ReasonCode": code,
            "ReasonMessage": message,
        }

    def move(self, status: str, code: str = "", message: str = "") -> None:
        with self.lock:
            if self.status in FINISHED:
                return
            moment = iso(now())  # one instant ends the previous status and starts this one
            self.transitions[-1]["EndTime"] = moment
            self.transitions.append(self._transition(status, code, message, start=moment))
            self.status, self.reason_code, self.reason_message = status, code, message
            self.modified_at = now()
            if status == PaiStatus.RUNNING:
                self.started_at = self.modified_at
            if status in FINISHED:
                self.finished_at = self.modified_at
                self.transitions[-1]["EndTime"] = moment
        self.note(f"status {status}" + (f": {message}" if message else ""))
        if status in FINISHED:
            logger.info("%s job %s %s%s", LOG_PREFIX, self.job_id, status, f" ({message})" if message else "")

    def note(self, text: str) -> None:
        self.append_log(f"{LOG_PREFIX} {iso(now())} {text}")

    def append_log(self, line: str) -> None:
        with self.lock:
            self.log.append(line)
        with (self.workdir / "job.log").open("a", encoding="utf-8") as out:
            out.write(line + "\n")

    @property
    def labels(self) -> dict[str, str]:
        return {str(lb.get("Key")): str(lb.get("Value")) for lb in self.body.get("Labels") or []}

    def output_uri(self, channel: Mapping[str, Any], base_url: str) -> str:
        """The channel's OutputUri exactly as sent; one the body did not give is the emulator's http copy."""
        return channel.get("OutputUri") or f"{base_url}/outputs/{self.job_id}/{channel['Name']}/"

    def describe(self, base_url: str, *, listed: bool = False) -> dict[str, Any]:
        """The job as GetTrainingJob (or, ``listed``, ListTrainingJobs) answers it, with the types Alibaba's
        SDK declares for each (its Scheduler values are strings in one and numbers in the other)."""
        with self.lock:
            outputs = [
                {**{k: v for k, v in ch.items() if k != "OutputUri"}, "OutputUri": self.output_uri(ch, base_url)}
                for ch in self.body.get("OutputChannels") or []
            ]
            end = self.finished_at or now()
            scheduler = {k: v if listed else str(v) for k, v in (self.body.get("Scheduler") or {}).items()}
            described: dict[str, Any] = {
                "TrainingJobId": self.job_id,
                "TrainingJobName": self.body.get("TrainingJobName"),
                "TrainingJobDescription": self.body.get("TrainingJobDescription", ""),
                "WorkspaceId": self.body.get("WorkspaceId"),
                "AlgorithmName": self.body.get("AlgorithmName", ""),
                "AlgorithmProvider": self.body.get("AlgorithmProvider", ""),
                "AlgorithmVersion": self.body.get("AlgorithmVersion", ""),
                "IsTempAlgo": self.body.get("AlgorithmSpec") is not None,
                "HyperParameters": list(self.body.get("HyperParameters") or []),
                "InputChannels": list(self.body.get("InputChannels") or []),
                "OutputChannels": outputs,
                "OutputModel": next(
                    ({"OutputChannelName": o["Name"], "Uri": o["OutputUri"]} for o in outputs if o["Name"] == "model"),
                    None,
                ),
                "ComputeResource": self.body.get("ComputeResource") or {},
                "Scheduler": scheduler,
                "Labels": list(self.body.get("Labels") or []),
                "Environments": dict(self.body.get("Environments") or {}),
                "PythonRequirements": list(self.body.get("PythonRequirements") or []),
                "Status": self.status,
                "ReasonCode": self.reason_code,
                "ReasonMessage": self.reason_message,
                "StatusTransitions": [dict(t) for t in self.transitions],
                "GmtCreateTime": iso(self.created_at),
                "GmtModifiedTime": iso(self.modified_at),
                "Duration": int((end - self.started_at).total_seconds()) if self.started_at else 0,
                "TrainingJobUrl": f"{base_url}/_emulator/jobs/{self.job_id}",
                "LatestMetrics": [
                    {"Name": name, "Value": value, "Timestamp": when}
                    for name, (value, when) in sorted(self.metrics.items())
                ],
                "Emulator": LABEL,
            }
            if self.progress is not None:
                described["LatestProgress"] = {
                    "OverallProgress": {"Value": self.progress[0], "Timestamp": self.progress[1]}
                }
            for key in ("AlgorithmSpec", "RoleArn", "Priority"):
                if self.body.get(key) is not None:
                    described[key] = self.body[key]
            return described

    def observe(self, line: str) -> None:
        """Match a log line against the job's MetricDefinitions and ProgressDefinitions."""
        program = self.program
        for definition in program.metric_definitions:
            match = re.search(definition["Regex"], line)
            if match and match.groups():
                try:
                    with self.lock:
                        self.metrics[definition["Name"]] = (float(match.group(1)), iso(now()))
                except ValueError:
                    pass
        if program.progress_regex:
            match = re.search(program.progress_regex, line)
            if match and match.groups():
                try:
                    with self.lock:
                        self.progress = (float(match.group(1)), iso(now()))
                except ValueError:
                    pass


class JobRunner:
    """Drives one job through PAI's status sequence on its own thread."""

    def __init__(self, job: EmulatedJob):
        self.job = job

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"pai-emulator-{self.job.job_id}", daemon=True).start()

    def _pause(self) -> bool:
        """Wait one step; True when a stop arrived meanwhile."""
        return self.job.stop_requested.wait(self.job.step_delay)

    def _stopped(self) -> None:
        self.job.move(PaiStatus.TERMINATED, "JobStopped", "Stopped by a StopTrainingJob request.")

    def _run(self) -> None:
        job = self.job
        try:
            self._lifecycle()
        except Exception as exc:  # the emulator must never leave a job hanging in a non-final status
            logger.exception("%s job %s broke", LOG_PREFIX, job.job_id)
            job.move(PaiStatus.FAILED, "EmulatorError", f"The emulator itself failed: {type(exc).__name__}: {exc}")
        finally:
            job.done.set()

    def _lifecycle(self) -> None:
        job = self.job
        if self._pause():
            return self._stopped()
        if job.create_failed:
            return job.move(PaiStatus.CREATE_FAILED, "CreateFailed", job.create_failed)
        for status in (PaiStatus.CREATED, PaiStatus.INITIALIZING):
            job.move(status)
            if self._pause():
                return self._stopped()
        try:
            command, env, cwd = self._prepare()
        except InitializeError as exc:
            return job.move(PaiStatus.INITIALIZE_FAILED, "InitializeFailed", str(exc))
        job.move(PaiStatus.SUBMITTED)
        if self._pause():
            return self._stopped()
        self._train(command, env, cwd)

    # -- initializing: the container's files -----------------------------------------------------------
    def _prepare(self) -> tuple[list[str], dict[str, str], Path]:
        job = self.job
        config_dir = job.workdir / "input" / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        hyperparameters = {item["Name"]: item["Value"] for item in job.body.get("HyperParameters") or []}
        hps_file = config_dir / "hyperparameters.json"
        hps_file.write_text(json.dumps(hyperparameters, indent=2, ensure_ascii=False), encoding="utf-8")
        check_requirements(list(job.body.get("PythonRequirements") or []))
        if job.body.get("PythonRequirements"):
            job.note("PythonRequirements are installed on this machine already (the emulator installs nothing)")

        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLAB_PAI_", "MLAB_OSS_", "ALIBABA_CLOUD_"))}
        env.update(
            PAI_CONFIG_DIR=str(config_dir),
            PAI_HPS=json.dumps(hyperparameters, ensure_ascii=False),
            PAI_TRAINING_JOB_ID=job.job_id,
            MLAB_UNDER_PAI_EMULATOR="1",
            PYTHONUNBUFFERED="1",
        )
        first_input: Path | None = None
        first_input_dir: Path | None = None
        for channel in job.body.get("InputChannels") or []:
            target = job.workdir / "input" / "data" / channel["Name"]
            fetched = self._fetch(channel["Name"], channel["InputUri"], target)
            env[f"PAI_INPUT_{channel['Name'].upper()}"] = str(target)
            if first_input is None:
                first_input, first_input_dir = fetched, target
            job.note(f"input channel {channel['Name']}: {channel['InputUri']} → {fetched}")
        outputs = {}
        for channel in job.body.get("OutputChannels") or []:
            target = job.workdir / "output" / channel["Name"]
            target.mkdir(parents=True, exist_ok=True)
            env[f"PAI_OUTPUT_{channel['Name'].upper()}"] = str(target)
            outputs[channel["Name"]] = target
        model_dir = outputs.get("model") or next(iter(outputs.values()), job.workdir / "output" / "model")
        model_dir.mkdir(parents=True, exist_ok=True)
        for name, value in (job.body.get("Environments") or {}).items():
            env[str(name)] = container_path(str(value), job.workdir)

        program = job.program
        if program.legacy:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
            values = {
                "hyperparameters": str(hps_file),
                "config_dir": str(config_dir),
                "input": str(first_input or ""),
                "input_dir": str(first_input_dir or ""),
                "output": str(model_dir),
                "job_id": job.job_id,
            }
            try:
                return [part.format(**values) for part in program.command], env, job.workdir
            except (KeyError, IndexError) as exc:
                raise InitializeError(f"The trainer command has an unknown placeholder: {exc}.") from None
        code_dir = job.workdir / "code"
        code_dir.mkdir(parents=True, exist_ok=True)
        if program.code_uri:
            archive = self._fetch("CodeDir", program.code_uri, job.workdir / "code-archive")
            unpack_code(archive, code_dir)
            job.note(f"CodeDir {program.code_uri} unpacked into /ml/usercode")
        job.note(f"image {program.image} is not pulled: the emulator runs the Command with this machine's Python")
        # Only the job's own code is importable, as in a container: the archive must be complete.
        env["PYTHONPATH"] = str(code_dir)
        return resolve_command(program.command, job.workdir), env, code_dir

    def _fetch(self, channel: str, uri: str, target: Path) -> Path:
        if uri.startswith("oss://"):
            if self.job.role is None:
                raise InitializeError(f"Input channel {channel}: this emulator has no OSS.")
            try:
                return self.job.role.fetch(uri, target)
            except InitializeError as exc:
                raise InitializeError(f"Input channel {channel}: {exc}") from None
        return fetch_input(channel, uri, target)

    def _publish_outputs(self) -> str | None:
        """Upload each output channel with an oss:// OutputUri (what PAI does when a job ends); the reason it
        could not, or None."""
        job = self.job
        for channel in job.body.get("OutputChannels") or []:
            uri = channel.get("OutputUri") or ""
            if not uri.startswith("oss://"):
                continue
            if job.role is None:
                return f"Output channel {channel['Name']}: this emulator has no OSS."
            try:
                keys = job.role.publish(job.workdir / "output" / channel["Name"], uri)
            except InitializeError as exc:
                return f"Output channel {channel['Name']}: {exc}"
            job.note(f"output channel {channel['Name']}: {len(keys)} file(s) written to {uri}")
        return None

    # -- running: the trainer ----------------------------------------------------------------------------
    def _train(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        job = self.job
        try:
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                start_new_session=True,  # its own process group: stopping the job stops everything it started
            )
        except OSError as exc:
            return job.move(PaiStatus.FAILED, "TrainerNotStarted", f"The trainer could not start: {exc}.")
        with job.lock:
            job.process = process
        job.move(PaiStatus.RUNNING)
        reader = threading.Thread(target=self._read_output, args=(process,), daemon=True)
        reader.start()

        limit = time_limit(job.body)
        started = now()
        outcome: tuple[str, str, str] | None = None
        while process.poll() is None:
            elapsed = (now() - started).total_seconds()
            if job.stop_requested.is_set():
                outcome = (PaiStatus.TERMINATED, "JobStopped", "Stopped by a StopTrainingJob request.")
            elif job.fail_running and elapsed >= job.fail_running[1]:
                outcome = (PaiStatus.FAILED, "JobFailed", job.fail_running[0])
            elif limit and elapsed > limit:
                outcome = (
                    PaiStatus.FAILED,
                    "JobTimeout",
                    f"The job ran longer than its Scheduler allows ({limit:g} s) and was stopped.",
                )
            if outcome:
                terminate(process)
                break
            job.stop_requested.wait(0.02)
        process.wait()
        reader.join(timeout=5)
        if outcome is None:
            if process.returncode == 0:
                refused = self._publish_outputs()
                outcome = (PaiStatus.FAILED, "OutputUploadFailed", refused) if refused else (PaiStatus.SUCCEED, "", "")
            else:
                last = next(
                    (line for line in reversed(job.log) if line.strip() and not line.startswith(LOG_PREFIX)), ""
                )
                detail = f"; its last line: {last.strip()[:300]}" if last else ""
                outcome = (
                    PaiStatus.FAILED,
                    "TrainerExited",
                    f"The trainer exited with code {process.returncode}{detail}",
                )
        job.move(*outcome)

    def _read_output(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.job.append_log(line.rstrip("\n"))
            self.job.observe(line)


def terminate(process: subprocess.Popen[str]) -> None:
    """SIGTERM the process group the emulator started, then SIGKILL it after a grace period."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def fetch_input(channel: str, uri: str, target: Path) -> Path:
    """Materialize an input channel under ``target``; return the file the trainer reads (or the directory)."""
    target.mkdir(parents=True, exist_ok=True)
    parts = urlsplit(uri)
    if parts.scheme == "file":
        source = Path(url2pathname(unquote(parts.path)))
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
            return target
        if not source.is_file():
            raise InitializeError(f"Input channel {channel}: {uri} does not exist.")
        dest = target / source.name
        shutil.copyfile(source, dest)
        return dest
    if parts.scheme in ("http", "https"):
        dest = target / (Path(unquote(parts.path)).name or "data")
        try:
            with requests.get(uri, stream=True, timeout=(5, 60)) as response:
                if response.status_code != 200:
                    raise InitializeError(f"Input channel {channel}: {uri} answered {response.status_code}.")
                with dest.open("wb") as out:
                    for chunk in response.iter_content(chunk_size=1 << 20):
                        out.write(chunk)
        except requests.RequestException as exc:
            raise InitializeError(f"Input channel {channel}: could not read {uri} ({type(exc).__name__}).") from None
        return dest
    raise InitializeError(
        f"Input channel {channel}: the emulator reads oss://, file:// and http(s):// inputs, not {parts.scheme or uri}."
    )
