"""RQ jobs of training runs. Jobs take run ids, fetch what they need and are safe to run twice.

- ``run_training(run_id)``: the local engine's whole run, or the PAI engine's submission.
- ``poll_pai_run(run_id)``: one look at a PAI job; it re-enqueues itself (RQ's scheduler) until the run ends,
  so no worker sleeps through a training.
- ``stop_pai_run(run_id)``: asks PAI to stop a cancelled run's job.

A job that raises, or that RQ finds abandoned because its worker died, fails its run through the
``on_failure`` callback, so a run is never left running without a worker.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import django_rq
from django.conf import settings
from django_redis import get_redis_connection
from rq import Callback

from .models import TrainingRun

logger = logging.getLogger(__name__)
QUEUE = "default"


def _poll_key(run_id: int) -> str:
    return f"mlab:run:{run_id}:pai-poll"


def _poll_failures_key(run_id: int) -> str:
    return f"mlab:run:{run_id}:pai-poll-failures"


def enqueue_training_run(run_id: int) -> None:
    """Enqueue a run (called on commit of its creation)."""
    job = django_rq.get_queue(QUEUE).enqueue(
        run_training,
        run_id,
        job_timeout=settings.MLAB_TRAINING_TIMEOUT_SECONDS,
        on_failure=Callback(training_job_failed),
        description=f"training run {run_id}",
    )
    TrainingRun.objects.filter(pk=run_id).update(rq_job_id=job.id)


def run_training(run_id: int) -> None:
    run = TrainingRun.objects.select_related("datasource", "template").filter(pk=run_id).first()
    if run is None or run.is_finished:
        return
    if run.engine == TrainingRun.Engine.PAI:
        from .engines import pai

        pai.submit(run)
    else:
        from .engines import local

        local.execute(run)


def training_job_failed(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ's on_failure: the job raised, timed out, or was abandoned by a dead worker."""
    from rq.exceptions import AbandonedJobError

    from .engines.local import INTERNAL_ERROR
    from .services.runs import WORKER_DIED, training_run_fail

    run_id = int(job.args[0])
    if exc_type is not None and issubclass(exc_type, AbandonedJobError):
        error = WORKER_DIED
    elif exc_type is not None and exc_type.__name__ == "JobTimeoutException":
        error = (
            f"The run took longer than the {settings.MLAB_TRAINING_TIMEOUT_SECONDS // 60} minutes a training may take, "
            "and was stopped. Try a smaller sample (a row limit or down-sampling) or fewer trees."
        )
    else:
        error = INTERNAL_ERROR.format(run=run_id)
    training_run_fail(run_id, error=error)


def schedule_pai_poll(run_id: int, *, delay: float | None = None, backoff: int = 0) -> None:
    """Look at the run's PAI job after ``delay`` seconds (default: the poll interval, doubled per failure)."""
    if delay is None:
        delay = min(settings.MLAB_PAI_POLL_SECONDS * (2**backoff), 300)
    queue = django_rq.get_queue(QUEUE)
    get_redis_connection("default").set(_poll_key(run_id), "1", ex=int(delay) + 300)
    if delay <= 0:
        queue.enqueue(poll_pai_run, run_id, description=f"PAI poll of run {run_id}")
    else:
        queue.enqueue_in(timedelta(seconds=delay), poll_pai_run, run_id, description=f"PAI poll of run {run_id}")


def pai_poll_scheduled(run_id: int) -> bool:
    return bool(get_redis_connection("default").exists(_poll_key(run_id)))


def clear_pai_poll(run_id: int) -> None:
    get_redis_connection("default").delete(_poll_key(run_id), _poll_failures_key(run_id))


def pai_poll_failures(run_id: int, *, increment: bool = False, reset: bool = False) -> int:
    redis = get_redis_connection("default")
    key = _poll_failures_key(run_id)
    if reset:
        redis.delete(key)
        return 0
    if increment:
        count = redis.incr(key)
        redis.expire(key, 86400)
        return int(count)
    return int(redis.get(key) or 0)


def poll_pai_run(run_id: int) -> None:
    from .engines import pai

    pai.poll(run_id)


def enqueue_pai_stop(run_id: int) -> None:
    django_rq.get_queue(QUEUE).enqueue(stop_pai_run, run_id, description=f"stop PAI job of run {run_id}")


def stop_pai_run(run_id: int) -> None:
    from .engines import pai

    pai.stop(run_id)
