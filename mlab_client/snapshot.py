"""The local snapshot a client starts from when the server cannot be reached.

Layout under ``snapshot_dir/<scene>/``: ``config.json`` (the config, its ETag and a sha256 of both) and
``models/<sha256>.onnx`` (each file named by the sha256 of its bytes). Every file is written to a temporary
file in the same directory, fsynced, then renamed over the old one, so a reader sees the old file or the new
one, never half of one. Model files are written before the config that names them. A file whose checksum
does not match is ignored, and a snapshot missing any model it names is not used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import SceneConfig
from .errors import ConfigError
from .transport import verify_artifact

logger = logging.getLogger("mlab_client")

SNAPSHOT_FORMAT = 1
_STALE_TEMP_SECONDS = 3600
_SCENE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # fullmatch: "$" would accept a trailing newline


@dataclass(frozen=True)
class Snapshot:
    config: SceneConfig
    etag: str | None
    artifacts: dict[str, bytes]  # sha256 → bytes, one per used version


def _canonical(payload: Any) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename, after the bytes are on disk."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class SnapshotStore:
    """Reads and writes one scene's snapshot under ``root/<scene>/``."""

    def __init__(self, root: str | os.PathLike[str], scene: str) -> None:
        if not _SCENE.fullmatch(scene):
            raise ValueError(f"scene {scene!r} cannot name a snapshot directory")
        self.directory = Path(root) / scene
        self.models = self.directory / "models"
        self.config_path = self.directory / "config.json"
        self.scene = scene

    def model_path(self, sha256: str) -> Path:
        return self.models / f"{sha256}.onnx"

    def read_artifact(self, sha256: str, size: int) -> bytes | None:
        """The snapshot's copy of an artifact, or None when it is absent or fails its checksum."""
        path = self.model_path(sha256)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            return verify_artifact(data, sha256, size, f"snapshot file {path}")
        except Exception as exc:
            logger.warning("mlab_client: ignoring a corrupt snapshot file: %s", exc)
            return None

    def load(self) -> Snapshot | None:
        """The snapshot if it is complete and every checksum matches; None otherwise (the reason is logged)."""
        try:
            document = json.loads(self.config_path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("mlab_client: ignoring the snapshot %s: unreadable (%s)", self.config_path, exc)
            return None
        body = {"config": document.get("config"), "etag": document.get("etag")} if isinstance(document, dict) else None
        if (
            body is None
            or document.get("format") != SNAPSHOT_FORMAT
            or document.get("sha256") != hashlib.sha256(_canonical(body)).hexdigest()
        ):
            logger.warning("mlab_client: ignoring the snapshot %s: checksum mismatch", self.config_path)
            return None
        try:
            config = SceneConfig.parse(body["config"], scene=self.scene)
        except ConfigError as exc:
            logger.warning("mlab_client: ignoring the snapshot %s: %s", self.config_path, exc)
            return None
        artifacts = {}
        for version in config.used_versions:
            info = config.versions[version]
            data = self.read_artifact(info.sha256, info.size)
            if data is None:
                logger.warning(
                    "mlab_client: ignoring the snapshot %s: model v%s is missing or corrupt", self.config_path, version
                )
                return None
            artifacts[info.sha256] = data
        return Snapshot(config, body["etag"], artifacts)

    def save(self, config: SceneConfig, etag: str | None, artifacts: dict[str, bytes]) -> None:
        """Write the models the config uses, then the config; drop files no longer used."""
        self.models.mkdir(parents=True, exist_ok=True)
        wanted = {config.versions[v].sha256: config.versions[v].size for v in config.used_versions}
        for sha256, size in wanted.items():
            if self.read_artifact(sha256, size) is None:
                if sha256 not in artifacts:  # loaded earlier, and its file has gone since
                    raise FileNotFoundError(
                        f"model {sha256[:12]} is no longer on disk; the snapshot would be incomplete"
                    )
                write_atomic(self.model_path(sha256), artifacts[sha256])
        body = {"config": dict(config.raw), "etag": etag}
        document = {"format": SNAPSHOT_FORMAT, **body, "sha256": hashlib.sha256(_canonical(body)).hexdigest()}
        write_atomic(self.config_path, json.dumps(document, sort_keys=True).encode())
        self._prune(set(wanted))

    def _prune(self, wanted: set[str]) -> None:
        now = time.time()
        for path in [*self.models.iterdir(), *self.directory.glob(".*.tmp")]:
            try:
                if path.suffix == ".onnx" and path.stem not in wanted:
                    path.unlink()
                elif path.suffix == ".tmp" and now - path.stat().st_mtime > _STALE_TEMP_SECONDS:
                    path.unlink()  # left behind by a process killed mid-write
            except FileNotFoundError:
                pass  # another process sharing the directory got there first
