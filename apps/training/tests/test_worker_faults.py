"""Workers that die and connections that go stale, with real processes stopped by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from django.db import connection

from apps.artifacts.models import Artifact, ArtifactChunk
from apps.training.models import TrainingRun
from apps.training.services.runs import WORKER_DIED, training_run_create
from apps.training.tests.runs_support import run_queued_jobs
from apps.training.tests.runs_support import wait_for as _wait_for
from tests.live import ROOT, process_env, rq_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
Status = TrainingRun.Status
FAST_REAPING = {"MLAB_RUN_HEARTBEAT_SECONDS": "2", "MLAB_RUN_REAP_AFTER_SECONDS": "2",
                "MLAB_WORKER_MAINTENANCE_SECONDS": "1"}  # fmt: skip


def _worker(log_path) -> subprocess.Popen:
    """`manage.py rqworker` as `make run` starts it, reaping fast."""
    return rq_worker(log_path, scheduler=False, **FAST_REAPING)


def _kill_with_children(process: subprocess.Popen) -> None:
    """kill -9 the worker and its work horse (RQ puts the horse in a process group of its own), like a
    machine that dies."""
    family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    for member in family:
        try:
            os.kill(member.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=10)
    psutil.wait_procs(family, timeout=10)


def test_a_worker_killed_mid_run_leaves_the_run_failed_and_no_artifact(builtin_templates, duck_source, user, tmp_path):
    run = training_run_create(
        template=builtin_templates["binary-gbdt"], params={"train": {"treeCount": 3000, "maxDepth": 6}},
        engine="local", datasource=duck_source, user=user,
    )  # fmt: skip
    worker = _worker(tmp_path / "worker-1.log")
    try:
        _wait_for(
            lambda: TrainingRun.objects.filter(pk=run.pk, status=Status.RUNNING, stage="fitting").exists(),
            "the run to be fitting",
        )
    finally:
        _kill_with_children(worker)  # kill -9, worker and horse
    assert TrainingRun.objects.get(pk=run.pk).status == Status.RUNNING  # nobody knows yet

    reaper = _worker(tmp_path / "worker-2.log")  # any worker's maintenance finds the run without heartbeat
    try:
        failed = _wait_for(
            lambda: TrainingRun.objects.filter(pk=run.pk, status=Status.FAILED).first(), "the run to be reaped"
        )
    finally:
        _kill_with_children(reaper)
    assert failed.error == WORKER_DIED
    assert failed.artifact_id is None and failed.finished_at is not None
    assert not Artifact.objects.exists() and not ArtifactChunk.objects.exists()


@pytest.fixture
def mysql_only():
    if connection.vendor != "mysql":
        pytest.skip("wait_timeout is MySQL/MariaDB's; the suite runs on MariaDB in CI")


def _connection_dropped_by_the_server():
    """Make the server drop this process's connection, as MySQL does after wait_timeout of idleness."""
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION wait_timeout = 1")
    time.sleep(2.5)


def _enqueue_a_database_job(run_id: int):
    import django_rq

    from apps.training.jobs import run_training

    return django_rq.get_queue("default").enqueue(run_training, run_id)


def test_a_stale_connection_does_not_fail_the_next_job(mysql_only, builtin_templates, duck_source, user):
    from rq import SimpleWorker

    run = training_run_create(
        template=builtin_templates["binary-lr"], params={}, engine="local", datasource=duck_source, user=user
    )
    TrainingRun.objects.filter(pk=run.pk).update(status=Status.CANCELLED)

    # Without Mlab's worker class, the job meets the dead connection: this is the failure the test guards.
    _connection_dropped_by_the_server()
    job = _enqueue_a_database_job(run.pk)
    import django_rq

    queue = django_rq.get_queue("default")
    SimpleWorker([queue], connection=queue.connection, serializer=queue.serializer).work(burst=True)
    job.refresh()
    assert job.get_status() == "failed"
    assert "gone away" in (job.latest_result().exc_string or "") or "2006" in (job.latest_result().exc_string or "")
    connection.close()

    # With it, the stale connection is noticed and replaced before the job runs.
    TrainingRun.objects.filter(pk=run.pk).update(status=Status.CANCELLED)
    _connection_dropped_by_the_server()
    job = _enqueue_a_database_job(run.pk)
    run_queued_jobs(with_scheduler=False)
    job.refresh()
    assert job.get_status() == "finished"
    connection.close()


def test_the_forking_worker_loads_what_jobs_import_before_it_forks():
    """Each horse inherits scikit-learn, skl2onnx and the trainer from the parent instead of importing them."""
    probe = (
        "import sys, django; django.setup()\n"
        "from django_rq import get_connection\n"
        "from django.conf import settings\n"
        "from apps.training.worker import MlabWorker\n"
        "watched = [*settings.MLAB_WORKER_PRELOAD, 'apps.training.engines.local', 'sklearn', 'skl2onnx']\n"
        "before = [m for m in watched if m in sys.modules]\n"
        "MlabWorker(['default'], connection=get_connection('default'))\n"
        "after = [m for m in watched if m in sys.modules]\n"
        "print(before, after)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=process_env(), capture_output=True, text=True, check=True
    ).stdout
    before, after = out.strip().split("] [")
    assert "sklearn" not in before, out  # the probe starts clean, so the worker is what loaded them
    for module in ("apps.training.engines.local", "apps.deploy.jobs", "sklearn", "skl2onnx"):
        assert module in after, out
