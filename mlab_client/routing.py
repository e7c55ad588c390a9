"""Deterministic routing of units to model versions: one implementation, shared by server and client.

A unit's bucket is a hash of the scene's salt and the unit id, so the same unit lands in the same bucket in
every process on every host. The server turns a deployment's split (version → integer percent) into an
*allocation*: half-open bucket ranges ``[start, end)`` owned by versions. When the split changes, the new
allocation moves the fewest buckets possible: a version that keeps or grows its share keeps every bucket it
had, so the fraction of units that switch version equals the change of the split and no more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .contract import BUCKETS

Range = tuple[int, int, int]  # (start, end) half-open, version


def bucket_of(unit_id: object, salt: str) -> int:
    """The bucket (0 … BUCKETS-1) of a unit in a scene with ``salt``."""
    digest = hashlib.sha256(f"{salt}:{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def _targets(splits: Mapping[int, int]) -> dict[int, int]:
    if not splits:
        raise ValueError("a split needs at least one version")
    if sum(splits.values()) != 100 or any(w < 0 for w in splits.values()):
        raise ValueError("split weights are non-negative integers summing to 100")
    return {version: weight * BUCKETS // 100 for version, weight in splits.items()}


def owners_from_ranges(ranges: Iterable[Sequence[int]]) -> list[int | None]:
    owners: list[int | None] = [None] * BUCKETS
    for start, end, version in ranges:
        owners[start:end] = [version] * (end - start)
    return owners


def ranges_from_owners(owners: Sequence[int | None]) -> list[Range]:
    ranges: list[Range] = []
    start = 0
    for index in range(1, BUCKETS + 1):
        if index == BUCKETS or owners[index] != owners[start]:
            owner = owners[start]
            if owner is not None:
                ranges.append((start, index, owner))
            start = index
    return ranges


def allocate(splits: Mapping[int, int], previous: Iterable[Sequence[int]] = ()) -> list[Range]:
    """Allocate buckets to versions by ``splits`` (version → percent, summing to 100), moving as few
    buckets as possible away from the ``previous`` allocation.

    A version above its new share (or gone from the split) keeps only its lowest buckets; versions below
    their share take the lowest free buckets, in version order. The same inputs give the same ranges.
    """
    targets = _targets(splits)
    owners = owners_from_ranges(previous)
    kept: dict[int, int] = {}
    for index, version in enumerate(owners):
        if version is None:
            continue
        if kept.get(version, 0) < targets.get(version, 0):
            kept[version] = kept.get(version, 0) + 1
        else:
            owners[index] = None
    free = (index for index, version in enumerate(owners) if version is None)
    for version in sorted(targets):
        for _ in range(targets[version] - kept.get(version, 0)):
            owners[next(free)] = version
    return ranges_from_owners(owners)


@dataclass(frozen=True)
class Router:
    """Looks up the version of a unit: overrides first, then the bucket's range."""

    salt: str
    ranges: tuple[Range, ...]
    overrides: Mapping[str, int]
    # Derived from salt and ranges in __post_init__: not arguments, and not part of equality or repr.
    _owners: tuple[int | None, ...] = field(init=False, repr=False, compare=False)
    _salted: hashlib._Hash = field(init=False, repr=False, compare=False)

    @classmethod
    def from_config(cls, config: Mapping) -> Router:
        ranges = tuple(sorted((int(s), int(e), int(v)) for s, e, v in config["allocation"]))
        return cls(
            salt=config["salt"],
            ranges=ranges,
            overrides={str(k): int(v) for k, v in config.get("overrides", {}).items()},
        )

    def __post_init__(self) -> None:
        # Precomputed once per config so that a lookup on the predict path is one hash and one index:
        # the owner of every bucket, and the hash state of the salt prefix (sha256 of prefix + id is the
        # same digest as bucket_of's).
        object.__setattr__(self, "_owners", tuple(owners_from_ranges(self.ranges)))
        object.__setattr__(self, "_salted", hashlib.sha256(f"{self.salt}:".encode()))

    def version_of_bucket(self, bucket: int) -> int:
        version = self._owners[bucket]
        if version is None:
            raise LookupError(f"bucket {bucket} is not allocated")
        return version

    def version_for(self, unit_id: object) -> int:
        key = unit_id if unit_id.__class__ is str else f"{unit_id}"
        if self.overrides:
            override = self.overrides.get(key)
            if override is not None:
                return override
        digest = self._salted.copy()
        digest.update(key.encode())
        version = self._owners[int.from_bytes(digest.digest()[:8], "big") % BUCKETS]
        if version is None:
            raise LookupError(f"unit {key!r} falls in an unallocated bucket")
        return version
