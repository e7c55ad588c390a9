"""RQ jobs of training runs: the entry points RQ calls. They take run ids, fetch what they need, call an engine
or a service, and are safe to run twice. ``queue.py`` enqueues them (by dotted path).

- ``run_training(run_id)``: the local engine's whole run, or the PAI engine's submission.
- ``poll_pai_run(run_id)``: one look at a PAI job; the engine schedules the next one until the run ends, so
  no worker sleeps through a training.
- ``stop_pai_run(run_id)``: asks PAI to stop a cancelled run's job.

A job that raises, or that RQ finds abandoned because its worker died, fails its run through the
``on_failure`` callback (``training_job_failed``), so a run is never left running without a worker.
"""

from __future__ import annotations

from django.conf import settings
from rq.exceptions import AbandonedJobError

from .engines import local, pai
from .engines.local import INTERNAL_ERROR
from .models import TrainingRun
from .services import WORKER_DIED, training_run_fail


def run_training(run_id: int) -> None:
    run = TrainingRun.objects.select_related("datasource", "template").filter(pk=run_id).first()
    if run is None or run.is_finished:
        return
    if run.engine == TrainingRun.Engine.PAI:
        pai.submit(run)
    else:
        local.execute(run)


def training_job_failed(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ's on_failure: the job raised, timed out, or was abandoned by a dead worker."""
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


def poll_pai_run(run_id: int) -> None:
    pai.poll(run_id)


def stop_pai_run(run_id: int) -> None:
    pai.stop(run_id)
