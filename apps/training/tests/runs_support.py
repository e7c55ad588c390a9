"""Running queued RQ jobs inside the test process (same database transaction), as a worker would."""

from __future__ import annotations

import django_rq

from apps.training.worker import MlabSimpleWorker


def run_queued_jobs(*, with_scheduler: bool = True) -> None:
    """Execute every job queued now (and scheduled jobs that are due) with Mlab's worker class, in-process."""
    queue = django_rq.get_queue("default")
    MlabSimpleWorker([queue], connection=queue.connection, serializer=queue.serializer).work(
        burst=True, with_scheduler=with_scheduler
    )
