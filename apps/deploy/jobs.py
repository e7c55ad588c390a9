"""RQ jobs of the deploy app: ids in, idempotent, JSON results. ``queue.py`` enqueues them by dotted path."""

from __future__ import annotations

from .services import events_aggregate, events_aggregation_sweep, publication_sweep, scene_publish


def scene_publish_job(scene_id: int) -> dict:
    """Publish the scene's newest deployment (nothing to do when it is already published), then enqueue any
    other scene left behind (its job lost, e.g. with a Redis restart)."""
    result = scene_publish(scene_id=scene_id).as_dict()
    result["swept"] = [other for other in publication_sweep() if other != scene_id]
    return result


def publication_sweep_job() -> list[int]:
    """Enqueue publication of scenes whose newest deployment is not published yet."""
    return publication_sweep()


def events_aggregate_job(scene_id: int) -> dict:
    """Count the scene's waiting events into the results (see services.aggregation); safe to run twice."""
    return events_aggregate(scene_id=scene_id).as_dict()


def events_aggregation_sweep_job() -> list[int]:
    """Request an aggregation run of every scene whose stream holds entries."""
    return events_aggregation_sweep()
