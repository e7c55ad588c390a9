"""Putting training work on the RQ queue.

Jobs are named here by their dotted path (RQ imports them in the worker), so the services that enqueue work
after a commit need nothing of what the jobs themselves import: services → queue, and jobs → engines →
services, with no way back. These functions only enqueue; what a run records about it is the services'.
"""

from __future__ import annotations

from datetime import timedelta

import django_rq
from django.conf import settings
from rq import Callback
from rq.job import Job

QUEUE = "default"
TRAINING_JOB = "apps.training.jobs.run_training"
TRAINING_JOB_FAILED = "apps.training.jobs.training_job_failed"
PAI_POLL_JOB = "apps.training.jobs.poll_pai_run"
PAI_STOP_JOB = "apps.training.jobs.stop_pai_run"


def enqueue_training(run_id: int) -> str:
    """Enqueue the run's training job; returns the RQ job id."""
    job = django_rq.get_queue(QUEUE).enqueue(
        TRAINING_JOB,
        run_id,
        job_timeout=settings.MLAB_TRAINING_TIMEOUT_SECONDS,
        on_failure=Callback(TRAINING_JOB_FAILED),
        description=f"training run {run_id}",
    )
    return job.id


def training_job_exists(job_id: str) -> bool:
    """Whether RQ still holds the job (queued, scheduled, started or just finished); False once it was deleted,
    e.g. from the dashboard, or lost with a Redis restart."""
    queue = django_rq.get_queue(QUEUE)
    return Job.exists(job_id, connection=queue.connection)


def enqueue_pai_poll(run_id: int, *, delay: float) -> None:
    """Enqueue one look at the run's PAI job, ``delay`` seconds from now (RQ's scheduler holds it meanwhile)."""
    queue = django_rq.get_queue(QUEUE)
    description = f"PAI poll of run {run_id}"
    if delay <= 0:
        queue.enqueue(PAI_POLL_JOB, run_id, description=description)
    else:
        queue.enqueue_in(timedelta(seconds=delay), PAI_POLL_JOB, run_id, description=description)


def enqueue_pai_stop(run_id: int) -> None:
    """Enqueue the job asking PAI to stop the run's training job."""
    django_rq.get_queue(QUEUE).enqueue(PAI_STOP_JOB, run_id, description=f"stop PAI job of run {run_id}")
