"""The aggregation of a scene's events: its stream, through the consumer group, into the database.

    delete the request flag → take the scene's aggregation lock (or leave: the holder drains the stream)
    → claim entries pending with dead consumers (XAUTOCLAIM) → read new entries in chunks (XREADGROUP)
    → count each chunk in one transaction (attribution.events_count_chunk) → XACK + XDEL once it committed
    → until the stream is empty or the time budget is spent → release the lock → guardrail → if entries are
    still waiting, request another run

Guarantees. A batch is counted at most once: its id is recorded (unique per scene) in the same transaction as
its counts, so a batch added twice, an entry replayed after a crash, or two aggregators racing all find the id
and skip it. A batch is counted at least once if its entry reaches the stream: it stays pending until the
transaction that counted it committed, and the entries of a consumer killed at any point (before, during or
after the transaction, before the XACK) are claimed by the next run and counted, or skipped if they were.

Runs are RQ jobs (``jobs.events_aggregate_job``), requested on demand: the events door asks for one when it
appends a batch and none is pending (a flag in Redis with a short expiry), and a run that stops with entries
waiting asks again. The worker's maintenance (``apps.deploy.worker``) sweeps every scene now and then, for
batches the SDK added straight to Redis, entries left by a dead consumer, and requests whose job was lost.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone
from redis import Redis
from redis.exceptions import RedisError

from mlabsite.locks import LockNotAcquired, RedisLock, redis_connection

from ..models import ConfigEntry, EventBatch, PendingOutcome, Scene
from ..queue import enqueue_events_aggregate
from .attribution import ChunkCounts, events_count_chunk, parse_entry
from .event_stream import CLAIM_IDLE_SECONDS, SceneStream, StreamEntry, consumer_name, request_key
from .guardrail import GuardrailOutcome, guardrail_check

logger = logging.getLogger(__name__)

LOCK_TIMEOUT = 10.0  # renewed every third of it while held; CLAIM_IDLE_SECONDS is longer
CHUNK_ENTRIES = 20  # entries (batches of up to 1,000 events) per transaction
CONSUMER_FORGET_SECONDS = 3600.0
PENDING_GRACE_SECONDS = 86_400.0  # a parked outcome waits a window and this long for its unit's exposure
_PRUNE_ROWS = 10_000


def lock_name(scene_id: int) -> str:
    return f"events:scene:{scene_id}"


@dataclass
class AggregationRun:
    """What one run did. ``busy``: another run held the scene's lock (it drains the stream)."""

    scene_id: int
    busy: bool = False
    entries: int = 0
    claimed: int = 0
    batches: int = 0
    duplicates: int = 0
    exposures: int = 0
    outcomes: int = 0
    invalid: int = 0
    lost: int = 0
    dead: int = 0  # entries that could not be counted, moved to the dead-letter stream
    chunks: int = 0
    seconds: float = 0.0
    waiting: int = 0  # entries never delivered, left for the next run
    requested_again: bool = False
    revisions: list[int] = field(default_factory=list)
    guardrail: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def events_aggregation_request(scene_id: int, *, connection: Redis | None = None) -> bool:
    """Ask for an aggregation run of the scene unless one is already asked for. Returns whether a job was
    enqueued. Redis errors are logged: the worker's sweep asks again."""
    connection = connection or redis_connection()
    try:
        if not connection.set(request_key(scene_id), "1", nx=True, ex=30):
            return False
        enqueue_events_aggregate(scene_id)
    except RedisError as exc:
        logger.warning("could not request the aggregation of scene %s: %s", scene_id, exc)
        return False
    return True


def events_aggregate(
    *, scene_id: int, budget: float | None = None, connection: Redis | None = None, claim_idle: float | None = None
) -> AggregationRun:
    """Aggregate the scene's stream for up to ``budget`` seconds (``MLAB_EVENTS_AGGREGATE_SECONDS``); see the
    module doc. Safe to run anywhere at any time, twice at once included."""
    started = time.monotonic()
    budget = settings.MLAB_EVENTS_AGGREGATE_SECONDS if budget is None else budget
    connection = connection or redis_connection()
    run = AggregationRun(scene_id=scene_id)
    scene = Scene.objects.filter(pk=scene_id).first()
    if scene is None:  # a job outliving its scene's database (tests, a restored backup): nothing to count
        connection.delete(request_key(scene_id))
        return run
    connection.delete(request_key(scene_id))  # appends from now on ask for a run after this one
    lock = RedisLock(lock_name(scene_id), timeout=LOCK_TIMEOUT, wait=0, connection=connection)
    try:
        lease = lock.acquire()
    except LockNotAcquired:
        run.busy = True
        return run
    stream = SceneStream(connection, scene.name)
    consumer = consumer_name()
    revisions: set[int] = set()
    try:
        stream.ensure_group()
        idle = CLAIM_IDLE_SECONDS if claim_idle is None else claim_idle
        claimed = stream.claim_idle(consumer, idle_seconds=idle, count=CHUNK_ENTRIES * 10)
        run.claimed = len(claimed)
        for start in range(0, len(claimed), CHUNK_ENTRIES):
            _count(scene, stream, claimed[start : start + CHUNK_ENTRIES], run, revisions, connection)
        while time.monotonic() - started < budget and not lease.lost.is_set():
            entries = stream.read_new(consumer, CHUNK_ENTRIES)
            if not entries:
                break
            _count(scene, stream, entries, run, revisions, connection)
    finally:
        lock.release()
    run.revisions = sorted(revisions)
    _tidy(scene, stream)
    run.guardrail = _guardrail(scene, revisions)
    length, pending = stream.backlog()
    run.waiting = max(0, length - pending)
    if run.waiting:
        run.requested_again = events_aggregation_request(scene_id, connection=connection)
    run.seconds = time.monotonic() - started
    if run.entries:
        logger.info(
            "aggregated %s: %d entries (%d claimed), %d batches (%d seen before), %d exposures, %d outcomes in %.2fs",
            scene.name,
            run.entries,
            run.claimed,
            run.batches,
            run.duplicates,
            run.exposures,
            run.outcomes,
            run.seconds,
        )
    return run


def _count(
    scene: Scene,
    stream: SceneStream,
    entries: list[StreamEntry],
    run: AggregationRun,
    revisions: set[int],
    connection: Redis,
) -> None:
    """Count one chunk, then acknowledge it. A database or Redis error leaves the chunk pending (claimed again by
    a later run); an entry that fails alone for any other reason (it cannot be counted, ever) is moved to the
    scene's dead-letter stream, so that it never blocks the ones behind it."""
    batches = [parse_entry(entry) for entry in entries]
    try:
        counts = events_count_chunk(scene=scene, batches=batches, connection=connection)
    except (DatabaseError, RedisError):
        logger.exception("counting %d entries of %s failed; they stay pending and are retried", len(entries), scene)
        raise
    except Exception as exc:
        if len(entries) > 1:
            for entry in entries:
                _count(scene, stream, [entry], run, revisions, connection)
            return
        logger.exception("entry %s of %s cannot be counted; moved to %s", entries[0].entry_id, scene, stream.dead_key)
        stream.dead_letter(entries[0], f"{type(exc).__name__}: {exc}")
        run.dead += 1
        return
    stream.settle([entry.entry_id for entry in entries])  # only now: the counts are committed
    _add(run, counts, len(entries))
    revisions |= counts.revisions


def _add(run: AggregationRun, counts: ChunkCounts, entries: int) -> None:
    run.entries += entries
    run.chunks += 1
    run.batches += counts.batches
    run.duplicates += counts.duplicates
    run.exposures += counts.exposures
    run.outcomes += counts.outcomes
    run.invalid += counts.invalid
    run.lost += counts.lost


def _tidy(scene: Scene, stream: SceneStream) -> None:
    """Forget consumers of past runs, and parked outcomes no exposure can claim any more."""
    try:
        stream.forget_consumers(idle_seconds=CONSUMER_FORGET_SECONDS)
    except RedisError as exc:
        logger.warning("could not forget idle consumers of %s: %s", scene.name, exc)
    horizon = time.time() - scene.attribution_window - PENDING_GRACE_SECONDS
    PendingOutcome.objects.filter(scene=scene, parked_at__lt=horizon).delete()


def _guardrail(scene: Scene, revisions: set[int]) -> dict | None:
    """The guardrail of the published revision, when this run counted events of it."""
    published = ConfigEntry.objects.filter(scene=scene).values_list("revision", flat=True).first()
    if not scene.guardrail_metric or not published or published not in revisions:
        return None
    try:
        outcome: GuardrailOutcome = guardrail_check(scene=scene, revision=published)
    except Exception:  # the counts are committed; a guardrail failure must not fail the run (it retries next time)
        logger.exception("the guardrail of %s r%s failed", scene.name, published)
        return None
    return outcome.as_dict()


def events_aggregation_sweep(*, connection: Redis | None = None) -> list[int]:
    """Request a run for every scene whose stream holds entries (what the worker's maintenance calls), and prune
    old batch ids. Returns the scenes requested."""
    connection = connection or redis_connection()
    scenes = list(Scene.objects.values_list("pk", "name"))
    pipe = connection.pipeline(transaction=False)
    for _, name in scenes:
        pipe.xlen(SceneStream(connection, name).key)
    lengths = pipe.execute()
    requested = [pk for (pk, _), length in zip(scenes, lengths, strict=True) if length]
    for pk in requested:
        events_aggregation_request(pk, connection=connection)
    event_batches_prune()
    return requested


def event_batches_prune(*, now=None) -> int:
    """Delete batch ids counted more than ``MLAB_EVENTS_BATCH_RETENTION_DAYS`` ago (a batch retried later
    than that would count again; a retry comes seconds or minutes after the first send). At most 10,000 rows a call."""
    horizon = (now or timezone.now()) - timedelta(days=settings.MLAB_EVENTS_BATCH_RETENTION_DAYS)
    old = list(EventBatch.objects.filter(aggregated_at__lt=horizon).values_list("pk", flat=True)[:_PRUNE_ROWS])
    if not old:
        return 0
    with transaction.atomic():
        return EventBatch.objects.filter(pk__in=old).delete()[0]
