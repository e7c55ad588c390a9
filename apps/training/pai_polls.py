"""The schedule of a PAI run's polls, and its two Redis keys.

A PAI run is followed by one poll job at a time, each enqueuing the next (no worker waits for a training).
``mlab:run:<id>:pai-poll`` says a poll is scheduled (the reaper re-enqueues a run whose key is gone, e.g. lost
with a Redis restart); ``mlab:run:<id>:pai-poll-failures`` counts polls in a row that could not reach PAI,
which also stretches the interval.
"""

from __future__ import annotations

from django.conf import settings
from django_redis import get_redis_connection

from .queue import enqueue_pai_poll

MAX_DELAY_SECONDS = 300
FAILURES_KEEP_SECONDS = 86400


def _scheduled_key(run_id: int) -> str:
    return f"mlab:run:{run_id}:pai-poll"


def _failures_key(run_id: int) -> str:
    return f"mlab:run:{run_id}:pai-poll-failures"


def pai_poll_schedule(run_id: int, *, delay: float | None = None, backoff: int = 0) -> None:
    """Look at the run's PAI job after ``delay`` seconds (default: the poll interval, doubled per failure)."""
    if delay is None:
        delay = min(settings.MLAB_PAI_POLL_SECONDS * (2**backoff), MAX_DELAY_SECONDS)
    get_redis_connection("default").set(_scheduled_key(run_id), "1", ex=int(delay) + MAX_DELAY_SECONDS)
    enqueue_pai_poll(run_id, delay=delay)


def pai_poll_scheduled(run_id: int) -> bool:
    return bool(get_redis_connection("default").exists(_scheduled_key(run_id)))


def pai_poll_clear(run_id: int) -> None:
    """The run ended: no poll is scheduled, and no failure is counted."""
    get_redis_connection("default").delete(_scheduled_key(run_id), _failures_key(run_id))


def pai_poll_failure_add(run_id: int) -> int:
    """Count one more poll that could not reach PAI; returns the count."""
    redis = get_redis_connection("default")
    count = redis.incr(_failures_key(run_id))
    redis.expire(_failures_key(run_id), FAILURES_KEEP_SECONDS)
    return int(count)


def pai_poll_failures_reset(run_id: int) -> None:
    get_redis_connection("default").delete(_failures_key(run_id))
