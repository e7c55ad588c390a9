"""Publication: turn a scene's newest deployment into its config row, safely among many servers.

    lock (per scene, renewed while held) → fencing token → warm the cache of every version in the split →
    compute the allocation from the published one → conditional write (fence and revision must both grow) +
    history row → notify pollers

Publishing is idempotent (it always publishes the scene's newest deployment, and does nothing when that is
already published), so jobs can run twice, and a deployment older than the published revision never
overwrites a newer one. A Redis failure on the way is retried; the cache is checked again just before and
after the write, so the config never points at a version whose artifact is not cached (after a Redis
restart the artifact endpoint also falls back to the database).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from functools import partial

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from redis import Redis
from redis.exceptions import RedisError

from apps.artifacts.storage import artifact_cache_ensure
from mlabsite.locks import Lease, RedisLock, fenced_update, redis_connection

from ..configs import (
    Published,
    config_body,
    config_cache_set,
    config_content,
    config_etag,
    config_memo,
    versions_needed,
)
from ..models import ConfigEntry, ConfigRevision, Deployment, ModelVersion, Scene
from ..notify import config_notify
from ..queue import enqueue_scene_publish

logger = logging.getLogger(__name__)

LOCK_TIMEOUT = 30.0
LOCK_WAIT = 120.0
RETRY_FOR = 120.0

PUBLISHED = "published"
UP_TO_DATE = "up-to-date"  # the newest deployment was already published
FENCED = "fenced"  # our write was refused: a holder with a newer fencing token wrote first
SUPERSEDED = "superseded"  # our write was refused: the same or a newer revision was already there


@dataclass
class PublishResult:
    scene_id: int
    outcome: str
    revision: int  # the revision this attempt tried to publish (0: the scene has no deployment)
    published_revision: int  # the revision in the config table afterwards
    fence: int
    acquired_at: float  # time.monotonic() when the lock was taken, and released
    released_at: float
    committed_at: float | None = None  # time.time() of the config write's commit

    def as_dict(self) -> dict:
        return asdict(self)


def lock_name(scene_id: int) -> str:
    return f"publish:scene:{scene_id}"


_publish_inline: ContextVar[bool] = ContextVar("mlab_publish_inline", default=False)


@contextmanager
def publication_inline() -> Iterator[None]:
    """Within this block, a deployment is published in this process when its transaction commits, instead of by
    a job on the queue: for doors that publish and report the result at once (``mlab_demo``, ``deploy --publish``).
    No publish job is left behind for a revision that is already published."""
    token = _publish_inline.set(True)
    try:
        yield
    finally:
        _publish_inline.reset(token)


def publication_enqueue(scene_id: int) -> None:
    """Enqueue the publish job of a scene (called on commit), or publish it now inside ``publication_inline``.
    When Redis refuses the job, the failure is logged and ``publication_sweep`` publishes the scene later."""
    if _publish_inline.get():
        scene_publish(scene_id=scene_id)
        return
    try:
        enqueue_scene_publish(scene_id)
    except RedisError as exc:
        logger.error("could not enqueue the publication of scene %s: %s", scene_id, exc)


def scene_publish(
    *,
    scene_id: int,
    lock_timeout: float = LOCK_TIMEOUT,
    lock_wait: float = LOCK_WAIT,
    retry_for: float = RETRY_FOR,
    on_locked: Callable[[Lease], None] | None = None,
) -> PublishResult:
    """Publish the scene's newest deployment (see the module doc). Retries Redis failures for ``retry_for``
    seconds, and a write refused by a newer holder's fence while the table still lacks our revision.
    ``on_locked(lease)`` is called while the lock is held, just before the conditional write (for tracing
    and fault tests). Raises LockNotAcquired when the lock stays taken for ``lock_wait`` seconds."""
    give_up = time.monotonic() + retry_for
    pause = 0.1
    while True:
        try:
            result = _publish_once(scene_id, lock_timeout=lock_timeout, lock_wait=lock_wait, on_locked=on_locked)
        except RedisError as exc:
            if time.monotonic() + pause > give_up:
                raise
            logger.warning("publication of scene %s hit a Redis error (%s); retrying in %.1fs", scene_id, exc, pause)
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
            continue
        if result.outcome == FENCED and result.published_revision < result.revision:
            continue
        return result


def _publish_once(
    scene_id: int, *, lock_timeout: float, lock_wait: float, on_locked: Callable[[Lease], None] | None
) -> PublishResult:
    connection = redis_connection()
    entry, _ = ConfigEntry.objects.get_or_create(scene_id=scene_id)
    lock = RedisLock(
        lock_name(scene_id), timeout=lock_timeout, wait=lock_wait, fence_floor=entry.fence, connection=connection
    )
    lease = lock.acquire()
    try:
        result = _publish_locked(scene_id, lease, connection=connection, on_locked=on_locked)
    finally:
        lock.release()
    assert lease.released_at is not None  # release() stamps the lease it held
    result.released_at = lease.released_at
    return result


def _publish_locked(
    scene_id: int, lease: Lease, *, connection: Redis, on_locked: Callable[[Lease], None] | None
) -> PublishResult:
    entry = ConfigEntry.objects.get(scene_id=scene_id)
    deployment = Deployment.objects.filter(scene_id=scene_id).select_related("scene").order_by("-revision").first()
    outcome = partial(
        PublishResult, scene_id=scene_id, fence=lease.fence, acquired_at=lease.acquired_at, released_at=0.0
    )
    if deployment is None or entry.revision >= deployment.revision:
        _cache_ensure(scene_id, _published_versions(entry), connection)
        if entry.revision:  # a run after a Redis failure (or restart): the polls' copy catches up
            # A published revision's deployment cannot be deleted (ConfigRevision protects it).
            assert deployment is not None
            config_cache_set(
                connection,
                scene=deployment.scene.name,
                revision=entry.revision,
                etag=entry.etag,
                body=config_body(entry.content),
            )
        target = deployment.revision if deployment else 0
        return outcome(outcome=UP_TO_DATE, revision=target, published_revision=entry.revision)
    needed = versions_needed(deployment)
    _cache_ensure(scene_id, needed, connection)
    versions = list(ModelVersion.objects.filter(scene_id=scene_id, version__in=needed))
    content = config_content(deployment=deployment, versions=versions, previous=entry.content)
    etag = config_etag(config_body(content))
    if on_locked is not None:
        on_locked(lease)
    _cache_ensure(scene_id, needed, connection)  # Redis may have restarted (and lost the cache) meanwhile
    with transaction.atomic():
        written = fenced_update(
            ConfigEntry.objects.filter(scene_id=scene_id, revision__lt=deployment.revision),
            fence_field="fence",
            fence=lease.fence,
            revision=deployment.revision,
            content=content,
            etag=etag,
            updated_at=timezone.now(),
        )
        if written:
            history = ConfigRevision(
                scene_id=scene_id,
                revision=deployment.revision,
                deployment=deployment,
                content=content,
                etag=etag,
                fence=lease.fence,
            )
            history.full_clean()
            history.save()
    if not written:
        entry.refresh_from_db()
        refused = FENCED if entry.fence >= lease.fence else SUPERSEDED
        logger.info(
            "publication of %s r%s refused (%s): the table holds r%s, fence %s > ours %s",
            deployment.scene.name,
            deployment.revision,
            refused,
            entry.revision,
            entry.fence,
            lease.fence,
        )
        return outcome(outcome=refused, revision=deployment.revision, published_revision=entry.revision)
    committed_at = time.time()
    _cache_ensure(scene_id, needed, connection)
    body = config_body(content)
    config_cache_set(connection, scene=deployment.scene.name, revision=deployment.revision, etag=etag, body=body)
    config_memo.put(deployment.scene.name, Published(revision=deployment.revision, etag=etag, body=body))
    config_notify(
        connection=connection, scene=deployment.scene.name, revision=deployment.revision, etag=etag, content=content
    )
    logger.info("published %s r%s (fence %s)", deployment.scene.name, deployment.revision, lease.fence)
    return outcome(
        outcome=PUBLISHED,
        revision=deployment.revision,
        published_revision=deployment.revision,
        committed_at=committed_at,
    )


def _published_versions(entry: ConfigEntry) -> set[int]:
    return {version["version"] for version in entry.content.get("versions", [])}


def _cache_ensure(scene_id: int, numbers: set[int], connection: Redis) -> None:
    versions = ModelVersion.objects.filter(scene_id=scene_id, version__in=numbers).select_related("artifact")
    for version in versions:
        if artifact_cache_ensure(version.artifact, connection=connection):
            logger.info("warmed the cache of scene %s v%s", scene_id, version.version)


def publication_sweep() -> list[int]:
    """Enqueue the publication of every scene whose newest deployment is not published (e.g. its job was lost
    with a Redis restart). Returns the scene ids. Every publish job sweeps; `manage.py publish --pending`
    does it on demand (e.g. from a timer)."""
    behind = list(
        Scene.objects.filter(Q(config__isnull=True) | Q(last_revision__gt=F("config__revision")))
        .exclude(last_revision=0)
        .values_list("pk", flat=True)
    )
    for scene_id in behind:
        publication_enqueue(scene_id)
    return behind
