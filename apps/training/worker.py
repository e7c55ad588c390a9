"""The RQ worker Mlab runs: database connections handled around every job, and stale runs reaped.

RQ forks a work horse per job. A horse must not inherit the parent's database connection (two processes
on one socket), and a connection kept across jobs must not be used after the server dropped it (MySQL's
``wait_timeout`` after an idle night: "server has gone away"). So the parent closes its connections before
forking, and the horse closes stale ones before and after the job.

Maintenance also reaps runs whose worker died (kill -9, out of memory): a running job keeps a heartbeat in
Redis; a run marked running whose heartbeat has expired is failed with a plain reason.
"""

from __future__ import annotations

import importlib
import logging

from django.conf import settings
from django.db import connections
from rq import SimpleWorker, Worker
from rq.worker import BaseWorker

from .services import training_runs_reap

logger = logging.getLogger(__name__)


def close_stale_connections() -> None:
    """Close connections past CONN_MAX_AGE or unusable (the server dropped them). A connection inside an
    atomic block is left alone: only a test runs jobs inside its own transaction, and closing would end it."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()


class _ConnectionHygiene(BaseWorker):
    """Connections closed around every job, stale runs reaped in maintenance. Mixed in before Worker or
    SimpleWorker; BaseWorker is its base so that the worker methods it extends are typed."""

    def perform_job(self, job, queue, *args, **kwargs):
        close_stale_connections()
        try:
            return super().perform_job(job, queue, *args, **kwargs)
        finally:
            close_stale_connections()

    @property
    def dequeue_timeout(self) -> int:
        # RQ runs maintenance between dequeues; an idle worker would otherwise block for ~400 s at a time.
        return max(1, min(super().dequeue_timeout, int(self.maintenance_interval)))

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        try:
            reaped = training_runs_reap()
        except Exception:  # maintenance must never stop the worker; the next round retries
            logger.exception("reaping stale training runs failed")
        else:
            if reaped:
                logger.warning("reaped %d training run(s) whose worker stopped", reaped)
        finally:
            close_stale_connections()


class MlabWorker(_ConnectionHygiene, Worker):
    """The forking worker (the default)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("maintenance_interval", settings.MLAB_WORKER_MAINTENANCE_SECONDS)
        super().__init__(*args, **kwargs)
        # What the jobs import, loaded once in the forking worker's parent so that each horse inherits it
        # instead of paying for it per job (scikit-learn, skl2onnx and the trainer: about 1.2 s a training run).
        # The project's settings name the job modules of every app.
        for module in settings.MLAB_WORKER_PRELOAD:
            importlib.import_module(module)

    def execute_job(self, job, queue):
        connections.close_all()  # never hand a live connection to the forked horse
        return super().execute_job(job, queue)


class MlabSimpleWorker(_ConnectionHygiene, SimpleWorker):
    """Runs jobs in the worker process itself (no fork); used where forking is not wanted."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("maintenance_interval", settings.MLAB_WORKER_MAINTENANCE_SECONDS)
        super().__init__(*args, **kwargs)
