"""The Redis lock with its watchdog, fencing tokens, and fenced writes."""

from __future__ import annotations

import threading
import time

import pytest

from apps.deploy.models import ConfigEntry
from apps.deploy.services import scene_create
from mlabsite.locks import FENCE_PREFIX, LOCK_PREFIX, LockNotAcquired, RedisLock, fence_draw, fenced_update


def test_a_held_lock_keeps_others_out_until_released():
    first = RedisLock("t:exclusive", timeout=5)
    lease = first.acquire()
    with pytest.raises(LockNotAcquired):
        RedisLock("t:exclusive", timeout=5, wait=0.2).acquire()
    first.release()
    with RedisLock("t:exclusive", timeout=5, wait=0.2) as second:
        assert second.fence > lease.fence
    assert lease.released_at is not None and lease.released_at >= lease.acquired_at


def test_fences_only_grow_and_stay_above_the_floor():
    fences = []
    for _ in range(5):
        with RedisLock("t:fences", timeout=5) as lease:
            fences.append(lease.fence)
    assert fences == sorted(set(fences))
    assert fence_draw("t:fences", floor=fences[-1] + 1000) == fences[-1] + 1001


def test_fences_keep_growing_when_redis_loses_the_counter(redis):
    before = fence_draw("t:restart")
    redis.delete(FENCE_PREFIX + "t:restart")  # what a restarted Redis without persistence looks like
    after = fence_draw("t:restart")
    assert after > before


def test_the_watchdog_renews_the_lock_past_its_timeout(redis):
    lock = RedisLock("t:renew", timeout=0.6)
    lease = lock.acquire()
    try:
        time.sleep(1.5)  # two and a half timeouts: without renewal the key would be gone
        assert redis.get(LOCK_PREFIX + "t:renew").decode() == lease.token
        assert not lease.lost.is_set()
        with pytest.raises(LockNotAcquired):
            RedisLock("t:renew", timeout=5, wait=0.1).acquire()
    finally:
        lock.release()
    assert redis.get(LOCK_PREFIX + "t:renew") is None


def test_a_lease_taken_over_is_marked_lost_and_release_leaves_the_new_holder_alone(redis):
    lock = RedisLock("t:lost", timeout=0.6)
    lease = lock.acquire()
    redis.set(LOCK_PREFIX + "t:lost", "someone-else")  # as if we had stalled and another process took over
    assert lease.lost.wait(timeout=5)
    lock.release()
    assert redis.get(LOCK_PREFIX + "t:lost") == b"someone-else"


def test_threads_hold_the_lock_one_at_a_time():
    intervals = []
    errors = []

    def worker():
        try:
            for _ in range(10):
                with RedisLock("t:threads", timeout=5, wait=30) as lease:
                    start = time.monotonic()
                    time.sleep(0.002)
                    intervals.append((start, time.monotonic(), lease.fence))
        except Exception as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    intervals.sort()
    assert len(intervals) == 40
    for (_, end, fence), (start, _, next_fence) in zip(intervals, intervals[1:], strict=False):
        assert start >= end
        assert next_fence > fence


@pytest.mark.django_db
def test_fenced_update_refuses_a_stale_token(user):
    rows = ConfigEntry.objects.filter(scene=scene_create(name="fenced", user=user))
    assert fenced_update(rows, fence_field="fence", fence=10, revision=1)
    assert not fenced_update(rows, fence_field="fence", fence=9, revision=2)
    assert not fenced_update(rows, fence_field="fence", fence=10, revision=3)
    entry = rows.get()
    assert (entry.fence, entry.revision) == (10, 1)
    assert fenced_update(rows, fence_field="fence", fence=11, revision=4)
    assert rows.get().revision == 4
