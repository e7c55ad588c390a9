"""The config a client polls, parsed and checked against the contract before anything is loaded from it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .contract import BUCKETS
from .errors import ConfigError
from .routing import Range

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class VersionInfo:
    """One model version as the config lists it."""

    version: int
    sha256: str
    size: int
    format: str
    url: str


@dataclass(frozen=True)
class SceneConfig:
    """A scene's published config: ``raw`` is the JSON as received, kept for the snapshot and ``Router``."""

    scene: str
    revision: int
    salt: str
    allocation: tuple[Range, ...]
    versions: Mapping[int, VersionInfo]
    overrides: Mapping[str, int]
    raw: Mapping[str, Any]

    @property
    def used_versions(self) -> list[int]:
        """The versions a unit can be routed to: the allocation's and the overrides'."""
        return sorted({version for _, _, version in self.allocation} | set(self.overrides.values()))

    @classmethod
    def parse(cls, data: Any, *, scene: str) -> SceneConfig:
        """Check ``data`` against the contract; raise ``ConfigError`` naming the first field at fault."""
        if not isinstance(data, Mapping):
            raise ConfigError("(body)", "is not a JSON object")
        if data.get("scene") != scene:
            raise ConfigError("scene", f"is {data.get('scene')!r}, expected {scene!r}")
        revision = _integer(data, "revision")
        salt = data.get("salt")
        if not isinstance(salt, str):
            raise ConfigError("salt", "must be a string")
        if data.get("buckets") != BUCKETS:
            raise ConfigError("buckets", f"is {data.get('buckets')!r}; this client routes over {BUCKETS}")
        versions = _versions(data.get("versions"))
        allocation = _allocation(data.get("allocation"), versions)
        overrides = _overrides(data.get("overrides", {}), versions)
        return cls(scene, revision, salt, allocation, versions, overrides, dict(data))


def _integer(data: Mapping, field: str) -> int:
    value = data.get(field)
    if type(value) is not int or value < 0:
        raise ConfigError(field, "must be a non-negative integer")
    return value


def _versions(items: Any) -> dict[int, VersionInfo]:
    if not isinstance(items, list) or not items:
        raise ConfigError("versions", "must be a non-empty list")
    versions: dict[int, VersionInfo] = {}
    for index, item in enumerate(items):
        field = f"versions[{index}]"
        if not isinstance(item, Mapping):
            raise ConfigError(field, "must be an object")
        version = item.get("version")
        if type(version) is not int or version < 0 or version in versions:
            raise ConfigError(f"{field}.version", "must be a unique non-negative integer")
        sha256 = item.get("sha256")
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            raise ConfigError(f"{field}.sha256", "must be 64 lowercase hex digits")
        size = item.get("size")
        if type(size) is not int or size < 0:
            raise ConfigError(f"{field}.size", "must be a non-negative integer")
        if item.get("format") != "onnx":
            raise ConfigError(f"{field}.format", f"{item.get('format')!r} is not supported (onnx only)")
        url = item.get("url")
        if not isinstance(url, str) or not url:
            raise ConfigError(f"{field}.url", "must be a non-empty string")
        versions[version] = VersionInfo(version, sha256, size, "onnx", url)
    return versions


def _allocation(items: Any, versions: Mapping[int, VersionInfo]) -> tuple[Range, ...]:
    if not isinstance(items, list) or not items:
        raise ConfigError("allocation", "must be a non-empty list of [start, end, version]")
    ranges = []
    for index, item in enumerate(items):
        if not isinstance(item, list | tuple) or len(item) != 3 or any(type(x) is not int for x in item):
            raise ConfigError(f"allocation[{index}]", "must be [start, end, version] integers")
        start, end, version = item
        if not 0 <= start < end <= BUCKETS:
            raise ConfigError(f"allocation[{index}]", f"[{start}, {end}) is not a range within 0…{BUCKETS}")
        if version not in versions:
            raise ConfigError(f"allocation[{index}]", f"version {version} is not in versions")
        ranges.append((start, end, version))
    ranges.sort()
    # Every bucket must have exactly one owner, or a unit could land nowhere.
    position = 0
    for start, end, _ in ranges:
        if start < position:
            raise ConfigError("allocation", f"ranges overlap at bucket {start}")
        if start > position:
            raise ConfigError("allocation", f"buckets {position}…{start - 1} are unallocated")
        position = end
    if position != BUCKETS:
        raise ConfigError("allocation", f"buckets {position}…{BUCKETS - 1} are unallocated")
    return tuple(ranges)


def _overrides(items: Any, versions: Mapping[int, VersionInfo]) -> dict[str, int]:
    if not isinstance(items, Mapping):
        raise ConfigError("overrides", "must be an object {unit_id: version}")
    overrides = {}
    for unit, version in items.items():
        if type(version) is not int or version not in versions:
            raise ConfigError(f"overrides[{unit!r}]", f"version {version!r} is not in versions")
        overrides[str(unit)] = version
    return overrides
