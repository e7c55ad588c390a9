"""Mlab's trainer as a PAI job's code: a deterministic tar.gz of the trainer and what it imports.

The archive holds, under the paths a ``python -m apps.training.trainer`` run from its root needs:

- ``apps/training/trainer/`` (the entry point and the training code),
- ``apps/training/pai/hyperparameters.py`` (hyper-parameters back into a payload) and the node types it reads
  (``apps/templates/nodes/``, ``apps/templates/validation.py``),
- ``mlab_client/`` (the artifact contract the export follows),
- the empty package markers in between, and
- ``requirements.txt``: the trainer's third-party distributions pinned as Mlab pins them (PAI installs them
  from ``PythonRequirements``, or a custom image can ``pip install -r`` it).

The same sources give the same bytes (sorted entries, zero mtimes and owners, fixed modes, gzip without a
timestamp or name), so the archive's sha256 names a trainer version: ``<prefix>/code/mlab-trainer-<sha>.tar.gz``
is uploaded once per version (:func:`upload_trainer_code`). Nothing here imports Django.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import re
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
# Whole packages (every .py below them) and single modules the trainer imports; tests check that this is
# everything `python -m apps.training.trainer` loads from the repository.
PACKAGES = ("apps/training/trainer", "apps/templates/nodes", "mlab_client")
MODULES = (
    "apps/__init__.py",
    "apps/templates/__init__.py",
    "apps/templates/validation.py",
    "apps/training/__init__.py",
    "apps/training/pai/__init__.py",
    "apps/training/pai/hyperparameters.py",
    "apps/training/text_column.py",
    "mlabsite/__init__.py",
    "mlabsite/errors.py",
)
# The trainer's third-party distributions, pinned from requirements.txt (those it does not list are left
# out: an optional one another trainer version uses).
DISTRIBUTIONS = ("numpy", "scikit-learn", "skl2onnx", "onnx", "onnxruntime", "requests", "lightgbm", "onnxmltools")
ENTRY_MODULE = "apps.training.trainer"


@dataclass(frozen=True)
class TrainerArchive:
    data: bytes
    sha256: str
    files: tuple[str, ...]
    requirements: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"mlab-trainer-{self.sha256}.tar.gz"

    def write(self, directory: str | Path) -> Path:
        path = Path(directory) / self.name
        path.write_bytes(self.data)
        return path


@dataclass(frozen=True)
class TrainerCode:
    """Where a job finds the trainer: the archive on OSS, and the requirements it needs installed."""

    uri: str
    sha256: str
    requirements: tuple[str, ...]
    endpoint: str = ""  # the OSS endpoint's host, as PAI's CodeDir Location names it
    reused: bool = False

    def location(self) -> dict[str, object]:
        """PAI's ``CodeDir``: a Location whose value names the bucket, the key and the endpoint."""
        bucket, _, key = self.uri.removeprefix("oss://").partition("/")
        value: dict[str, str] = {"Bucket": bucket, "Key": key}
        if self.endpoint:
            value["Endpoint"] = self.endpoint
        return {"LocationType": "oss", "LocationValue": value}


def source_files(root: Path = REPO_ROOT) -> list[str]:
    files = set(MODULES)
    for package in PACKAGES:
        files.update(
            str(p.relative_to(root))
            for p in (root / package).rglob("*.py")
            if "__pycache__" not in p.parts and "tests" not in p.relative_to(root / package).parts
        )
    return sorted(files)


def pinned_requirements(root: Path = REPO_ROOT, names: Sequence[str] = DISTRIBUTIONS) -> list[str]:
    """``name==version`` of each of ``names`` that Mlab's requirements*.txt pin, in ``names``' order."""
    pins: dict[str, str] = {}
    for path in sorted(root.glob("requirements*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;#]+)", line)
            if match:
                pins.setdefault(_normalize(match[1]), f"{match[1]}=={match[2]}")
    return [pins[_normalize(name)] for name in names if _normalize(name) in pins]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def build_trainer_archive(root: Path = REPO_ROOT) -> TrainerArchive:
    """The trainer's code archive, byte for byte the same for the same sources and pins."""
    files = source_files(root)
    requirements = pinned_requirements(root)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in files:
            _add(tar, name, (root / name).read_bytes())
        _add(tar, "requirements.txt", ("\n".join(requirements) + "\n").encode())
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    data = packed.getvalue()
    return TrainerArchive(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        files=(*files, "requirements.txt"),
        requirements=tuple(requirements),
    )


@functools.lru_cache(maxsize=1)
def trainer_archive() -> TrainerArchive:
    """This process's trainer archive (built once: the sources do not change under a running process)."""
    return build_trainer_archive()


def upload_trainer_code(store: Any, archive: TrainerArchive | None = None) -> TrainerCode:
    """Put the archive at ``<prefix>/code/mlab-trainer-<sha>.tar.gz`` unless it is already there (same sha256
    in its metadata); return where jobs find it. ``store`` is an :class:`~.oss.OssStore`."""
    archive = archive or trainer_archive()
    key = store.code_key(archive.sha256)
    with tempfile.TemporaryDirectory(prefix="mlab-trainer-code-") as directory:
        stored = store.ensure_uploaded(archive.write(directory), key, sha256=archive.sha256)
    return TrainerCode(
        uri=stored.uri,
        sha256=archive.sha256,
        requirements=archive.requirements,
        endpoint=store.endpoint_host,
        reused=stored.reused,
    )
