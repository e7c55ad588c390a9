"""Putting publication on the RQ queue. The job is named by its dotted path (RQ imports it in the worker), so
the services that enqueue it need nothing of what the job module imports: services → queue, jobs → services.
"""

from __future__ import annotations

import django_rq
from rq import Retry

QUEUE = "default"
PUBLISH_JOB = "apps.deploy.jobs.scene_publish_job"
PUBLISH_RETRY_SECONDS = [1, 5, 15, 30, 60]


def enqueue_scene_publish(scene_id: int) -> None:
    """Enqueue the publish job of a scene, retried with backoff if it fails. Raises RedisError."""
    django_rq.get_queue(QUEUE).enqueue(
        PUBLISH_JOB,
        scene_id,
        retry=Retry(max=len(PUBLISH_RETRY_SECONDS), interval=PUBLISH_RETRY_SECONDS),
        job_timeout=600,
        description=f"publish scene {scene_id}",
    )


AGGREGATE_JOB = "apps.deploy.jobs.events_aggregate_job"


def enqueue_events_aggregate(scene_id: int) -> None:
    """Enqueue an aggregation run of the scene's event stream (the run finds out what there is to do). Raises
    RedisError."""
    django_rq.get_queue(QUEUE).enqueue(
        AGGREGATE_JOB,
        scene_id,
        job_timeout=600,
        result_ttl=60,
        failure_ttl=24 * 3600,
        description=f"aggregate the events of scene {scene_id}",
    )
