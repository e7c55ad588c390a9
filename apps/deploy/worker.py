"""The RQ worker Mlab runs: the training app's (connections handled around jobs, stale runs reaped), whose
maintenance also sweeps the scenes' event streams.

The sweep does not aggregate: it requests an aggregation job for every scene whose stream holds entries (batches
the SDK added straight to Redis, entries a dead consumer left pending, requests whose job was lost with a Redis
restart), so that maintenance never keeps the worker from its queue. Batches sent over HTTP need no sweep: the
events door requests a run as it appends them. The sweep runs every ``MLAB_WORKER_MAINTENANCE_SECONDS``.
"""

from __future__ import annotations

import logging

from rq.worker import BaseWorker

from apps.training import worker as training_worker

from .services import events_aggregation_sweep

logger = logging.getLogger(__name__)


class _EventsSweep(BaseWorker):
    """Mixed in before the training app's workers (BaseWorker is its base so that the method it extends is typed)."""

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        try:
            requested = events_aggregation_sweep()
        except Exception:  # maintenance must never stop the worker; the next round retries
            logger.exception("sweeping the event streams failed")
        else:
            if requested:
                logger.info("requested the aggregation of %d scene(s) with events waiting", len(requested))
        finally:
            training_worker.close_stale_connections()


class MlabWorker(_EventsSweep, training_worker.MlabWorker):
    """The forking worker (the default, ``settings.RQ["WORKER_CLASS"]``)."""


class MlabSimpleWorker(_EventsSweep, training_worker.MlabSimpleWorker):
    """Runs jobs in the worker process itself (no fork)."""
