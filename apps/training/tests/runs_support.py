"""Running queued RQ jobs inside the test process (same database transaction), as a worker would."""

from __future__ import annotations

import time

import django_rq
import pytest

from apps.training.worker import MlabSimpleWorker


def run_queued_jobs(*, with_scheduler: bool = True) -> None:
    """Execute every job queued now (and scheduled jobs that are due) with Mlab's worker class, in-process."""
    queue = django_rq.get_queue("default")
    MlabSimpleWorker([queue], connection=queue.connection, serializer=queue.serializer).work(
        burst=True, with_scheduler=with_scheduler
    )


def wait_for(predicate, what: str, timeout: float = 90, interval: float = 0.1):
    """Poll ``predicate`` until it returns something truthy (returned), or fail the test saying what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}")
