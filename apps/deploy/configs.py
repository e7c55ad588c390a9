"""The config a client polls: built from a deployment and the previously published allocation."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from django.urls import reverse
from redis.exceptions import RedisError

from mlab_client.contract import BUCKETS
from mlab_client.routing import allocate
from mlabsite.locks import redis_bytes, redis_connection

from .models import ConfigEntry, Deployment, ModelVersion

logger = logging.getLogger(__name__)


def config_content(*, deployment: Deployment, versions: Iterable[ModelVersion], previous: dict) -> dict:
    """``scene, revision, salt, buckets, allocation ([start, end, version], half-open), versions ([{version,
    sha256, size, format, url}]), overrides``. The allocation moves as few buckets as possible away from
    ``previous`` (the content last published)."""
    scene = deployment.scene
    weights = {row["version"]: row["weight"] for row in deployment.splits if row["weight"] > 0}
    allocation = allocate(weights, previous=previous.get("allocation", []))
    by_number = {version.version: version for version in versions}
    needed = sorted(set(weights) | set(deployment.overrides.values()))
    return {
        "scene": scene.name,
        "revision": deployment.revision,
        "salt": scene.salt,
        "buckets": BUCKETS,
        "allocation": [list(bucket_range) for bucket_range in allocation],
        "versions": [
            {
                "version": number,
                "sha256": by_number[number].sha256,
                "size": by_number[number].size,
                "format": by_number[number].format,
                "url": reverse("api:scene-version-artifact", kwargs={"name": scene.name, "version": number}),
            }
            for number in needed
        ],
        "overrides": dict(deployment.overrides),
    }


def versions_needed(deployment: Deployment) -> set[int]:
    """The versions a client must load: those with a positive weight, and those named by overrides."""
    return {row["version"] for row in deployment.splits if row["weight"] > 0} | set(deployment.overrides.values())


def config_body(content: dict) -> bytes:
    """The canonical JSON of a config: what the endpoint sends, and what the ETag is computed from."""
    return json.dumps(content, separators=(",", ":"), sort_keys=True).encode()


def config_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


# --- the published config, cached in Redis for the polls ------------------------------------------------
# The database's ConfigEntry is the truth; polls read this copy (one GET, no query). It only moves forward:
# a write carrying an older revision than the cached one is ignored, so a slow reader refilling the cache
# after a miss cannot undo a publication.

CONFIG_CACHE_PREFIX = "mlab:config:"

_SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
    local revision = tonumber(string.match(current, '^(%d+) '))
    if revision and revision >= tonumber(ARGV[1]) then
        return 0
    end
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


def config_cache_key(scene: str) -> str:
    return CONFIG_CACHE_PREFIX + scene


def config_cache_value(revision: int, etag: str, body: bytes) -> bytes:
    return f"{revision} {etag}\n".encode() + body


def config_cache_parse(raw: bytes | None) -> tuple[int, str, bytes] | None:
    """``(revision, etag, body)`` of a cached value, or None for a miss or a value that does not parse."""
    if not raw:
        return None
    head, sep, body = raw.partition(b"\n")
    revision, _, etag = head.decode(errors="replace").partition(" ")
    if not sep or not revision.isdigit() or not etag:
        return None
    return int(revision), etag, body


def config_cache_set(connection, *, scene: str, revision: int, etag: str, body: bytes) -> bool:
    """Cache a published config unless a newer revision is cached already. True when written."""
    value = config_cache_value(revision, etag, body)
    return bool(connection.eval(_SET_IF_NEWER, 1, config_cache_key(scene), revision, value))


@dataclass(eq=False)
class Answer:
    """An answer of the config endpoint. ``encoded`` keeps what a server made of it once (the ASGI door's two
    messages), so that the thousand polls given one answer send the same bytes and build nothing."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    encoded: dict = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Published:
    """A published config as the endpoint sends it. One object per revision and process: a notification
    builds it once, and every poll of the scene answers with its ``ok`` (or ``not_modified``) Answer."""

    revision: int
    etag: str
    body: bytes

    @cached_property
    def ok(self) -> Answer:
        return Answer(
            200, {"Content-Type": "application/json", "ETag": self.etag, "Cache-Control": "no-cache"}, self.body
        )

    @cached_property
    def not_modified(self) -> Answer:
        return Answer(304, {"ETag": self.etag, "Cache-Control": "no-cache"})


class ConfigMemo:
    """The process's memo of published configs, so that a poll does no I/O at all. An entry is trusted for
    ``seconds`` (then re-read from Redis); this process's publications and, under ASGI, every notification
    overwrite it at once. So a plain ETag poll may see a publication of another WSGI process up to
    ``seconds`` late; long polls are woken by notifications."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: dict[str, tuple[float, Published]] = {}

    def get(self, scene: str) -> Published | None:
        entry = self._entries.get(scene)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, scene: str, published: Published) -> Published:
        """Keep ``published`` for ``seconds``; returns what the memo holds now: the object it held already when
        that is the same revision (so that its prepared answers are built once per revision, not per refill)."""
        if self.seconds <= 0:
            return published
        entry = self._entries.get(scene)
        if entry is not None and (entry[1].revision, entry[1].etag) == (published.revision, published.etag):
            published = entry[1]
        self._entries[scene] = (time.monotonic() + self.seconds, published)
        return published

    def clear(self) -> None:
        self._entries.clear()


config_memo = ConfigMemo(seconds=0.5)


def published_db(name: str) -> Published | None:
    """The published config as the database has it (the truth), copied into Redis and the memo; None when the
    scene has published nothing (or does not exist)."""
    row = ConfigEntry.objects.filter(scene__name=name).values_list("revision", "etag", "content").first()
    if row is None or not row[0]:
        return None
    published = Published(revision=row[0], etag=row[1], body=config_body(row[2]))
    try:
        config_cache_set(
            redis_connection(), scene=name, revision=published.revision, etag=published.etag, body=published.body
        )
    except RedisError as exc:
        logger.warning("could not cache the config of %s: %s", name, exc)
    return config_memo.put(name, published)


def published_now(name: str) -> Published | None:
    """The published config: from the memo, else Redis (one GET), else the database."""
    published = config_memo.get(name)
    if published is None:
        try:
            hit = config_cache_parse(redis_bytes(redis_connection().get(config_cache_key(name))))
        except RedisError:
            hit = None
        if hit is None:
            return published_db(name)
        published = config_memo.put(name, Published(*hit))
    return published
