"""What an emulated job runs and where its data comes from: algorithm specs (inline or registered), the
workspace's algorithm registry, and the job role's access to the emulator's OSS.

A job's program is one of:

- an inline ``AlgorithmSpec`` (no ``AlgorithmName``): its ``Command`` runs in the job's code directory, where
  ``CodeDir`` (a tar.gz on the emulator's OSS) is unpacked, as PAI unpacks it into ``/ml/usercode``;
- a version of an algorithm registered with CreateAlgorithm / CreateAlgorithmVersion: the same, from the
  version's spec;
- the emulator's pre-registered ``mlab-trainer``: the emulator's ``trainer_command`` (placeholders
  ``{hyperparameters}`` ``{input}`` ``{output}``…), run from the repository, which stands for an algorithm
  registered before the emulator started.

The emulator runs no image: ``python`` in a Command is this machine's Python, and paths under ``/ml/`` in a
Command or an environment variable are the job directory's (``/ml/usercode`` → ``<job>/code``, ``/ml/input`` →
``<job>/input``, ``/ml/output`` → ``<job>/output``). ``PythonRequirements`` are checked against what is
installed here (the emulator cannot reach a package index) and a job whose requirements are not met fails to
initialize, naming them.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import re
import secrets
import string
import sys
import tarfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .oss import OssFaults, OssProblem, OssState

ML_ROOT = "/ml/"
_REQUIREMENT_RE = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(?:==\s*([^\s;]+))?\s*$")


class InitializeError(Exception):
    """A job cannot start: its inputs cannot be fetched, its code unpacked or its command built."""


class AlgorithmError(ValueError):
    """A registry request PAI would refuse."""


@dataclass
class JobProgram:
    """What a job runs. ``legacy``: the pre-registered trainer command with placeholders."""

    command: list[str]
    image: str = ""
    code_uri: str = ""
    legacy: bool = False
    metric_definitions: list[dict[str, str]] = field(default_factory=list)
    progress_regex: str = ""
    declared_hyperparameters: list[dict[str, Any]] | None = None


def new_id(prefix: str, length: int = 11) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def spec_problems(spec: Any, where: str = "AlgorithmSpec") -> list[str]:
    """What PAI would refuse in an AlgorithmSpec, each problem naming its field."""
    if not isinstance(spec, dict):
        return [f"{where} must be an object."]
    problems = []
    for name in ("Image", "JobType"):
        if not isinstance(spec.get(name), str) or not spec.get(name):
            problems.append(f"{where}.{name} is required.")
    command = spec.get("Command")
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        problems.append(f"{where}.Command is required: a list of strings.")
    code = spec.get("CodeDir")
    if code is not None:
        value = code.get("LocationValue") if isinstance(code, dict) else None
        if not isinstance(code, dict) or str(code.get("LocationType", "")).lower() != "oss":
            problems.append(f"{where}.CodeDir must be a Location with LocationType oss.")
        elif not isinstance(value, dict) or not value.get("Bucket") or not value.get("Key"):
            problems.append(f"{where}.CodeDir.LocationValue must be an object with Bucket and Key (and Endpoint).")
    for key in ("MetricDefinitions",):
        for index, item in enumerate(spec.get(key) or []):
            if not isinstance(item, dict) or not item.get("Name") or not item.get("Regex"):
                problems.append(f"{where}.{key}[{index}] needs a Name and a Regex.")
                continue
            try:
                re.compile(item["Regex"])
            except re.error as exc:
                problems.append(f"{where}.{key}[{index}].Regex does not compile: {exc}.")
    progress = ((spec.get("ProgressDefinitions") or {}).get("OverallProgress") or {}).get("Regex")
    if progress:
        try:
            re.compile(progress)
        except re.error as exc:
            problems.append(f"{where}.ProgressDefinitions.OverallProgress.Regex does not compile: {exc}.")
    return problems


def program_from_spec(spec: Mapping[str, Any], *, declare: bool = False) -> JobProgram:
    return JobProgram(
        command=list(spec["Command"]),
        image=str(spec.get("Image", "")),
        code_uri=_code_uri(spec.get("CodeDir")),
        metric_definitions=[dict(m) for m in spec.get("MetricDefinitions") or []],
        progress_regex=str(((spec.get("ProgressDefinitions") or {}).get("OverallProgress") or {}).get("Regex", "")),
        declared_hyperparameters=list(spec.get("HyperParameters") or []) if declare else None,
    )


def _code_uri(code: Any) -> str:
    value = (code or {}).get("LocationValue") or {}
    return f"oss://{value['Bucket']}/{value['Key']}" if value else ""


@dataclass
class Algorithm:
    algorithm_id: str
    name: str
    workspace_id: str
    display_name: str
    description: str
    created: dt.datetime
    versions: dict[str, tuple[dict[str, Any], dt.datetime]] = field(default_factory=dict)


class AlgorithmRegistry:
    """The workspace's custom algorithms (CreateAlgorithm, CreateAlgorithmVersion, ListAlgorithms…)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._algorithms: dict[str, Algorithm] = {}

    def create(self, *, name: str, workspace_id: str, display_name: str = "", description: str = "") -> Algorithm:
        if not re.match(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$", name or ""):
            raise AlgorithmError("AlgorithmName must start with a letter: letters, digits, - and _, at most 64.")
        with self._lock:
            if any(a.name == name and a.workspace_id == workspace_id for a in self._algorithms.values()):
                raise AlgorithmError(f"An algorithm named {name} already exists in workspace {workspace_id}.")
            algorithm = Algorithm(
                algorithm_id=new_id("algo-", 12),
                name=name,
                workspace_id=workspace_id,
                display_name=display_name or name,
                description=description,
                created=dt.datetime.now(dt.UTC),
            )
            self._algorithms[algorithm.algorithm_id] = algorithm
            return algorithm

    def add_version(self, algorithm_id: str, version: str, spec: dict[str, Any]) -> None:
        problems = spec_problems(spec)
        if problems:
            raise AlgorithmError(" ".join(problems))
        if not re.match(r"^v\d+\.\d+\.\d+$", version or ""):
            raise AlgorithmError("AlgorithmVersion must look like v1.0.0.")
        with self._lock:
            algorithm = self._algorithms.get(algorithm_id)
            if algorithm is None:
                raise LookupError(f"Algorithm {algorithm_id} does not exist.")
            if version in algorithm.versions:
                raise AlgorithmError(f"Version {version} of {algorithm.name} already exists.")
            algorithm.versions[version] = (spec, dt.datetime.now(dt.UTC))

    def find(
        self, *, workspace_id: str | None = None, name: str | None = None, algorithm_id: str | None = None
    ) -> list[Algorithm]:
        with self._lock:
            return sorted(
                (
                    a
                    for a in self._algorithms.values()
                    if (not workspace_id or a.workspace_id == workspace_id)
                    and (not name or a.name == name)
                    and (not algorithm_id or a.algorithm_id == algorithm_id)
                ),
                key=lambda a: a.created,
            )

    def get(self, algorithm_id: str) -> Algorithm:
        found = self.find(algorithm_id=algorithm_id)
        if not found:
            raise LookupError(f"Algorithm {algorithm_id} does not exist.")
        return found[0]

    def version_spec(self, workspace_id: str, name: str, version: str) -> dict[str, Any] | None:
        for algorithm in self.find(workspace_id=workspace_id, name=name):
            if version in algorithm.versions:
                return algorithm.versions[version][0]
        return None


class JobRole:
    """The workspace role a job reads its inputs and code and writes its outputs with: the emulator's OSS,
    subject to the denials its faults set for principal "job"."""

    def __init__(self, state: OssState, faults: OssFaults):
        self.state, self.faults = state, faults

    @staticmethod
    def split(uri: str) -> tuple[str, str]:
        bucket, _, key = uri.removeprefix("oss://").partition("/")
        return bucket, key

    def _check(self, verb: str, uri: str) -> tuple[str, str]:
        bucket, key = self.split(uri)
        if not self.state.has_bucket(bucket):
            raise InitializeError(f"The bucket of {uri} does not exist.")
        if self.faults.denied("job", verb, bucket, key):
            raise InitializeError(
                f"the PAI workspace role cannot {verb} {uri} (AccessDenied): grant the role "
                f"oss:{'GetObject' if verb == 'read' else 'PutObject'} on it."
            )
        return bucket, key

    def fetch(self, uri: str, target: Path) -> Path:
        """Copy an object, or every object under a prefix (a URI ending in /), into ``target``."""
        bucket, key = self._check("read", uri)
        target.mkdir(parents=True, exist_ok=True)
        if key and not key.endswith("/"):
            try:
                data = self.state.read(bucket, key)
            except OssProblem:
                raise InitializeError(f"{uri} does not exist.") from None
            dest = target / key.rsplit("/", 1)[-1]
            dest.write_bytes(data)
            return dest
        keys = [k for k in self.state.keys(bucket) if k.startswith(key)]
        if not keys:
            raise InitializeError(f"Nothing is stored under {uri}.")
        for found in keys:
            dest = (target / found[len(key) :]).resolve()
            if not dest.is_relative_to(target.resolve()):
                raise InitializeError(f"{uri}: the object {found} would land outside its channel.")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(self.state.read(bucket, found))
        return target

    def publish(self, source: Path, uri: str) -> list[str]:
        """Upload every file of an output channel under ``uri`` (a prefix); the keys written."""
        bucket, prefix = self._check("write", uri)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        written = []
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            key = prefix + str(path.relative_to(source)).replace("\\", "/")
            self.state.write_file(bucket, key, path)
            written.append(key)
        return written


def unpack_code(archive: Path, target: Path) -> None:
    """Unpack a tar.gz as PAI unpacks CodeDir, refusing members that would land outside ``target``."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise InitializeError(f"The code archive could not be unpacked: {exc}.") from None


def check_requirements(requirements: list[str]) -> None:
    """PythonRequirements against this machine's distributions: the emulator installs nothing."""
    unmet = []
    for requirement in requirements:
        match = _REQUIREMENT_RE.match(requirement)
        if not match:
            unmet.append(f"{requirement} (the emulator understands name or name==version)")
            continue
        try:
            installed = importlib.metadata.version(match[1])
        except importlib.metadata.PackageNotFoundError:
            unmet.append(f"{requirement} (not installed)")
            continue
        if match[2] and installed != match[2]:
            unmet.append(f"{requirement} (this machine has {installed})")
    if unmet:
        raise InitializeError(
            "PythonRequirements cannot be installed by the emulator (it reaches no package index): "
            + "; ".join(unmet)
            + "."
        )


def container_path(value: str, workdir: Path) -> str:
    """A /ml/… path of the container as the job directory's path; other values unchanged."""
    if value.startswith("/ml/usercode"):
        return str(workdir / "code") + value[len("/ml/usercode") :]
    if value.startswith(ML_ROOT):
        return str(workdir) + "/" + value[len(ML_ROOT) :]
    return value


def resolve_command(command: list[str], workdir: Path) -> list[str]:
    resolved = [container_path(part, workdir) for part in command]
    if resolved and resolved[0] in ("python", "python3", "/usr/bin/python", "/usr/bin/python3"):
        resolved[0] = sys.executable  # the image's Python, as far as the emulator can have one
    return resolved
