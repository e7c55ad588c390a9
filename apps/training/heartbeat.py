"""A running job's heartbeat in Redis: proof that some worker is still executing a run.

The key is also a claim: only the job that set it (with its own token) renews or clears it, so a second
delivery of the same RQ job (at-least-once) sees the claim and leaves the run alone. If the worker dies, the
key expires within MLAB_RUN_HEARTBEAT_SECONDS and the reaper (apps/training/worker.py) fails the run.
"""

from __future__ import annotations

import logging
import secrets
import threading

from django.conf import settings
from django_redis import get_redis_connection

logger = logging.getLogger(__name__)

_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def heartbeat_key(run_id: int) -> str:
    return f"mlab:run:{run_id}:heartbeat"


def heartbeat_alive(run_id: int) -> bool:
    return bool(get_redis_connection("default").exists(heartbeat_key(run_id)))


class Heartbeat:
    """``with Heartbeat(run_id) as beat: if beat.claimed: …`` — renews the claim until exit, six times per TTL
    (settings.MLAB_RUN_HEARTBEAT_SECONDS)."""

    def __init__(self, run_id: int):
        self.run_id = run_id
        self.ttl = max(1, int(settings.MLAB_RUN_HEARTBEAT_SECONDS))
        self.interval = self.ttl / 6
        self.token = secrets.token_hex(16)
        self.claimed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._redis = get_redis_connection("default")

    def __enter__(self) -> Heartbeat:
        self.claimed = bool(self._redis.set(heartbeat_key(self.run_id), self.token, nx=True, ex=self.ttl))
        if self.claimed:
            self._thread = threading.Thread(target=self._beat, name=f"heartbeat-run-{self.run_id}", daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._redis.eval(_RENEW, 1, heartbeat_key(self.run_id), self.token, self.ttl)
            except Exception:  # a Redis blip: the next beat retries well within the TTL
                logger.warning("heartbeat of run %s could not be renewed", self.run_id, exc_info=True)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 1)
        if self.claimed:
            try:
                self._redis.eval(_RELEASE, 1, heartbeat_key(self.run_id), self.token)
            except Exception:
                logger.warning("heartbeat of run %s could not be released; it expires by itself", self.run_id)
