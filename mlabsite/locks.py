"""Distributed mutual exclusion over Redis: a lease renewed while held, and fencing tokens.

A lease alone is not enough: its holder can be paused (GC, SIGSTOP, a slow disk) past the lease timeout while
another process takes the lock. So every holder also draws a *fencing token*, a number that only grows, and
every write it makes is conditional on the stored token being smaller (``fenced_update``). A stale holder's
write then matches no row. Usage::

    with RedisLock(f"transfer:run:{run.pk}", timeout=30) as lease:
        ... prepare ...
        if not fenced_update(TrainingRun.objects.filter(pk=run.pk), fence_field="transfer_fence",
                             fence=lease.fence, artifact=artifact):
            ...  # a newer holder already wrote: do nothing

Fencing tokens survive a Redis restart: the counter of a name is seeded from Redis' clock (in microseconds)
when it is missing, so a restarted Redis hands out tokens above any it gave before (as long as fewer than a
million were drawn per second), and ``floor`` (the largest token already written, read from the database)
is a second guard.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

from django.db.models import QuerySet
from django_redis import get_redis_connection
from redis import Redis

logger = logging.getLogger(__name__)

LOCK_PREFIX = "mlab:lock:"
FENCE_PREFIX = "mlab:fence:"

# Renew only if the lock is still ours; release likewise. Both compare the holder's random token.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
_FENCE = """
if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('SET', KEYS[1], ARGV[1])
end
local token = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[2])
if token <= floor then
    token = floor + 1
    redis.call('SET', KEYS[1], token)
end
return token
"""


class LockNotAcquired(Exception):
    """Another holder kept the lock for longer than we were willing to wait."""


def redis_connection() -> Redis:
    return get_redis_connection("default")


def redis_bytes(value: bytes | str | None) -> bytes | None:
    """A string value as read from Redis: bytes, or None for a missing key. redis-py types replies as
    ``bytes | str`` because a client may decode them; ours never do (``decode_responses`` stays off)."""
    if isinstance(value, str):
        raise TypeError("a str reply from Redis: some client was made with decode_responses=True; Mlab's must not be")
    return value


def fence_draw(name: str, *, floor: int = 0, connection: Redis | None = None) -> int:
    """Draw the next fencing token of ``name``: larger than every token drawn before and than ``floor``."""
    connection = connection or redis_connection()
    seconds, microseconds = connection.time()
    seed = seconds * 1_000_000 + microseconds
    return int(connection.eval(_FENCE, 1, FENCE_PREFIX + name, seed, int(floor)))


def fenced_update(queryset: QuerySet, *, fence_field: str, fence: int, **values) -> bool:
    """UPDATE the rows of ``queryset`` whose ``fence_field`` is below ``fence``, setting it to ``fence``.

    True when a row was written; False when a holder with a newer token wrote first (a stale write).
    """
    return queryset.filter(**{f"{fence_field}__lt": fence}).update(**{fence_field: fence}, **values) > 0


@dataclass
class Lease:
    """A held lock: its fencing token and when it was held (``time.monotonic()``, comparable across
    processes on one host). ``lost`` is set when a renewal found the lock no longer ours."""

    name: str
    token: str
    fence: int
    acquired_at: float
    released_at: float | None = None
    lost: threading.Event = field(default_factory=threading.Event)


class RedisLock:
    """A per-name Redis lock (SET NX PX) with a watchdog thread renewing it every ``timeout / 3``.

    On entry it waits up to ``wait`` seconds (raising LockNotAcquired after that), then draws a fencing
    token above ``fence_floor``. If the holder stalls past ``timeout`` the lock expires and another process
    may take it: writes must be fenced.
    """

    def __init__(
        self,
        name: str,
        *,
        timeout: float = 30.0,
        wait: float = 60.0,
        fence_floor: int = 0,
        connection: Redis | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.name = name
        self.key = LOCK_PREFIX + name
        self.timeout = timeout
        self.wait = wait
        self.fence_floor = fence_floor
        self.connection = connection or redis_connection()
        self.lease: Lease | None = None
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    def acquire(self) -> Lease:
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.wait
        pause = 0.005
        while not self.connection.set(self.key, token, nx=True, px=int(self.timeout * 1000)):
            if time.monotonic() >= deadline:
                raise LockNotAcquired(f"lock {self.name!r} is held by another process")
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, 0.1)
        acquired_at = time.monotonic()
        try:
            fence = fence_draw(self.name, floor=self.fence_floor, connection=self.connection)
        except BaseException:
            self._release_quietly(token)
            raise
        self.lease = Lease(name=self.name, token=token, fence=fence, acquired_at=acquired_at)
        self._stop.clear()
        self._watchdog = threading.Thread(
            target=self._renew_until_stopped, args=(self.lease,), name=f"lease:{self.name}", daemon=True
        )
        self._watchdog.start()
        return self.lease

    def release(self) -> None:
        lease, self.lease = self.lease, None
        if lease is None:
            return
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join()
        lease.released_at = time.monotonic()
        self._release_quietly(lease.token)

    def _release_quietly(self, token: str) -> None:
        # After a Redis restart or an expiry there is nothing to release; the lease simply ends.
        try:
            self.connection.eval(_RELEASE, 1, self.key, token)
        except Exception as exc:
            logger.warning("could not release lock %s: %s", self.name, exc)

    def _renew_until_stopped(self, lease: Lease) -> None:
        interval = self.timeout / 3
        while not self._stop.wait(interval):
            try:
                renewed = self.connection.eval(_RENEW, 1, self.key, lease.token, int(self.timeout * 1000))
            except Exception as exc:  # a connection error: try again at the next tick
                logger.warning("could not renew lock %s: %s", self.name, exc)
                continue
            if not renewed:
                logger.warning("lock %s was lost (expired or taken over); writes will be fenced", self.name)
                lease.lost.set()
                return

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()
