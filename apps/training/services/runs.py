"""Writes of training runs: create, cancel, retry, and the state changes the engines report.

Status moves only forward: queued → running → succeeded | failed | cancelled. Every change that ends a run
is a conditional UPDATE on the status it leaves, so two workers (RQ delivers at least once) or a worker and a
reaper can never both finish the same run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.artifacts.storage import artifact_store
from apps.templates.models import AlgorithmTemplate
from apps.templates.validation import template_specs
from mlabsite.locks import fenced_update

from ..datasources import backend_for
from ..heartbeat import heartbeat_alive
from ..launch import prepare_launch
from ..models import DataSource, TrainingRun, TrainingRunEvent
from ..pai_polls import pai_poll_schedule, pai_poll_scheduled
from ..queue import enqueue_pai_stop, enqueue_training, training_job_exists
from ..run_secrets import run_secrets_forget, run_secrets_stash
from ..selectors import training_run_may_describe

logger = logging.getLogger(__name__)
Status = TrainingRun.Status
ACTIVE = (Status.QUEUED, Status.RUNNING)
QUEUE_LOST = (
    "This run never started: its job was lost from the queue (deleted from the RQ dashboard, or lost with a "
    "Redis restart) and queueing it again did not help. Relaunch it."
)
QUEUE_TIMEOUT = (
    "This run waited more than {duration} in the queue, even after being queued again: no worker took it. "
    "Check that a worker runs (python -m mlabsite.serve starts one), then relaunch it."
)
WORKER_DIED = (
    "The worker running this training stopped before it finished (it was killed or ran out of memory). "
    "Nothing was saved. Relaunch the run to try again."
)


def training_run_log(run: TrainingRun | int, message: str, *, level: str = "info", stage: str = "", data=None) -> None:
    """Append one line to the run's log (its events)."""
    TrainingRunEvent.objects.create(
        run_id=run if isinstance(run, int) else run.pk, level=level, stage=stage, message=message, data=data
    )


@transaction.atomic
def training_run_create(
    *,
    template: AlgorithmTemplate,
    params: Mapping[str, Any],
    engine: str,
    datasource: DataSource,
    user,
    retry_of: TrainingRun | None = None,
) -> TrainingRun:
    """Validate the parameters, generate the sample SQL and the payload, record the run and enqueue it once
    the transaction commits. Raises RunParamsInvalid or ValidationError (naming the field) on bad input, a
    data source this machine can only generate SQL for included."""
    if not backend_for(datasource).executable:
        raise ValidationError(
            {
                "datasource": f"{datasource.name} ({datasource.kind}) cannot be read from this machine: there are "
                "no credentials for it here. Runs need a DuckDB or MySQL source."
            }
        )
    prepared = prepare_launch(template=template, params=params, datasource=datasource, engine=engine)
    run = TrainingRun(
        template=template,
        owner=user,
        engine=engine,
        datasource=datasource,
        params=prepared.masked,
        payload=prepared.payload,
        sql=prepared.sql,
        status=Status.QUEUED,
        stage="queued",
        retry_of=retry_of,
    )
    run.full_clean()
    run.save()
    run_secrets_stash(run.pk, prepared.secrets)
    how = "the local engine" if engine == TrainingRun.Engine.LOCAL else "PAI"
    training_run_log(run, f"Queued for {how} by {user.get_username()}.", stage="queued")
    transaction.on_commit(partial(training_run_enqueue, run.pk))
    return run


def training_run_enqueue(run_id: int) -> None:
    """Put the run's job on the queue (the on-commit step of its creation) and record the job's id."""
    training_run_enqueued(run_id, rq_job_id=enqueue_training(run_id))


def training_run_enqueued(run_id: int, *, rq_job_id: str) -> None:
    TrainingRun.objects.filter(pk=run_id).update(rq_job_id=rq_job_id, updated_at=timezone.now())


def training_run_params_for_retry(run: TrainingRun) -> dict[str, dict[str, Any]]:
    """The run's parameters as a new launch takes them: secrets were never kept, so they start empty."""
    params = {key: dict(values) for key, values in run.params.items()}
    for spec in template_specs(run.template):
        for param in spec.node_type.params:
            if param.secret and spec.key in params:
                params[spec.key].pop(param.name, None)
    return params


def training_run_retry(*, run: TrainingRun, user) -> TrainingRun:
    """Launch a new run with the same template, data source, engine and parameters."""
    return training_run_create(
        template=run.template,
        params=training_run_params_for_retry(run),
        engine=run.engine,
        datasource=run.datasource,
        user=user,
        retry_of=run,
    )


def training_run_describe(*, run: TrainingRun, user, name: str, note: str) -> TrainingRun:
    """Give the run a name and a note (its owner, or a superuser). Raises PermissionDenied for anyone else and
    ValidationError naming ``name`` or ``note`` when too long."""
    if not training_run_may_describe(run=run, user=user):
        raise PermissionDenied("Only the run's owner can name it or change its note.")
    run.name, run.note = name.strip(), note.strip()
    run.full_clean(exclude=[f.name for f in TrainingRun._meta.fields if f.name not in ("name", "note")])
    run.save(update_fields=["name", "note"])  # not updated_at: naming a run changes nothing it did
    return run


@transaction.atomic
def training_run_cancel(*, run: TrainingRun, user) -> TrainingRun:
    """Cancel a run. A queued run is cancelled at once; a running one is asked to stop, and its engine
    stops at the next stage boundary (local) or stops the PAI job. A finished run is left as it is."""
    run = TrainingRun.objects.select_for_update().get(pk=run.pk)
    if run.is_finished:
        return run
    if run.status == Status.QUEUED:
        training_run_finish(run.pk, status=Status.CANCELLED, stage="cancelled", error="", expected=(Status.QUEUED,))
        training_run_log(run, f"Cancelled by {user.get_username()} before it started.", stage="cancelled")
    else:
        TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True, updated_at=timezone.now())
        training_run_log(run, f"Cancellation requested by {user.get_username()}.", stage=run.stage)
        if run.engine == TrainingRun.Engine.PAI and run.external_job_id:
            transaction.on_commit(partial(enqueue_pai_stop, run.pk))
    run.refresh_from_db()
    return run


def training_run_start(run_id: int, *, stage: str) -> bool:
    """queued → running. False when the run is no longer queued (cancelled, or another delivery started it)."""
    now = timezone.now()
    started = TrainingRun.objects.filter(pk=run_id, status=Status.QUEUED).update(
        status=Status.RUNNING, stage=stage, progress=1, started_at=now, updated_at=now
    )
    return bool(started)


def training_run_submitted(
    run_id: int, *, external_job_id: str, reused: bool, input_uri: str = "", output_uri: str = "", console_url: str = ""
) -> None:
    """The run's PAI job exists (created now, or ``reused``: found where an earlier attempt created it), reading
    its sample from ``input_uri`` and writing its model under ``output_uri``."""
    state = {"input_uri": input_uri, "output_uri": output_uri, "console_url": console_url}
    TrainingRun.objects.filter(pk=run_id).update(
        external_job_id=external_job_id, external_state=state, updated_at=timezone.now()
    )
    how = "found the job an earlier attempt created" if reused else "created"
    training_run_log(run_id, f"PAI job {external_job_id} {how}.", stage="submitted")
    training_run_progress(run_id, stage="submitted to PAI", progress=15)


def training_run_external_observed(run_id: int, *, status: str, reason: str, progress: float | None) -> None:
    """Record what PAI last said of the run's job (its own status, reason and progress)."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().only("external_state").filter(pk=run_id).first()
        if run is None:
            return
        state = {**run.external_state, "status": status, "reason": reason, "progress": progress}
        if state != run.external_state:
            TrainingRun.objects.filter(pk=run_id).update(external_state=state)


def training_run_progress(run_id: int, *, stage: str, progress: int, message: str = "") -> None:
    """Record the stage and percentage of a running run (and log the stage's message when it changes)."""
    changed = (
        TrainingRun.objects.filter(pk=run_id, status=Status.RUNNING)
        .exclude(stage=stage)
        .update(stage=stage, progress=progress, updated_at=timezone.now())
    )
    if not changed:
        TrainingRun.objects.filter(pk=run_id, status=Status.RUNNING).update(
            progress=progress, updated_at=timezone.now()
        )
    elif message:
        training_run_log(run_id, message, stage=stage)


def training_run_cancel_requested(run_id: int) -> bool:
    return TrainingRun.objects.filter(pk=run_id, cancel_requested=True).exists()


def training_run_finish(
    run_id: int,
    *,
    status: str,
    stage: str,
    error: str = "",
    expected: tuple[str, ...] = ACTIVE,
    fence: int | None = None,
    **fields: Any,
) -> bool:
    """Move an active run to a final status (with ``fields`` such as metrics, report, artifact). Returns False
    when the run was no longer in ``expected`` (someone else finished it first), or when ``fence`` is given and
    a holder of a newer fencing token wrote first: then nothing is written."""
    now = timezone.now()
    values = {"status": status, "stage": stage, "error": error, "finished_at": now, "updated_at": now, **fields}
    if status == Status.SUCCEEDED:
        values["progress"] = 100
    active = TrainingRun.objects.filter(pk=run_id, status__in=expected)
    if fence is None:
        finished = bool(active.update(**values))
    else:
        finished = fenced_update(active, fence_field="transfer_fence", fence=fence, **values)
    if finished:
        run_secrets_forget(run_id)
    return finished


@transaction.atomic
def training_run_succeed(
    run_id: int, *, onnx_bytes: bytes, report: Mapping[str, Any], fence: int | None = None
) -> bool:
    """Store the artifact and finish the run in one transaction: either both are visible or neither.

    ``fence``: the fencing token of the lock under which a PAI job's model is transferred; a stale holder's
    write (a newer token already wrote) changes nothing."""
    artifact = artifact_store(onnx_bytes, format="onnx")
    done = training_run_finish(
        run_id,
        status=Status.SUCCEEDED,
        stage="done",
        expected=(Status.RUNNING,),
        fence=fence,
        artifact=artifact,
        metrics=dict(report.get("metrics", {})),
        report=dict(report),
    )
    if done:
        metrics = report.get("metrics", {})
        headline = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float))[:300]
        training_run_log(run_id, f"Succeeded: {headline}", stage="done")
    return done


def training_run_fail(run_id: int, *, error: str, stage: str = "failed") -> bool:
    """Finish an active run as failed with a plain-words reason."""
    done = training_run_finish(run_id, status=Status.FAILED, stage=stage, error=error)
    if done:
        training_run_log(run_id, error, level="error", stage=stage)
    return done


def training_run_mark_cancelled(run_id: int, *, message: str) -> bool:
    done = training_run_finish(run_id, status=Status.CANCELLED, stage="cancelled")
    if done:
        training_run_log(run_id, message, stage="cancelled")
    return done


def training_runs_reap(*, now=None) -> int:
    """Fail local runs whose worker died: running, no live heartbeat, not updated for
    settings.MLAB_RUN_REAP_AFTER_SECONDS. Queued runs whose job is gone, or that waited longer than
    settings.MLAB_RUN_QUEUE_LIMIT_SECONDS, are queued again once, then failed (``training_runs_queued_reap``).

    PAI runs are watched by their poll job instead: a lost poller is re-enqueued, never failed.
    Returns how many runs were reaped or recovered.
    """
    now = now or timezone.now()
    grace = timedelta(seconds=settings.MLAB_RUN_REAP_AFTER_SECONDS)
    stale = TrainingRun.objects.filter(status=Status.RUNNING, updated_at__lt=now - grace)
    reaped = training_runs_queued_reap(now=now)
    for run in stale.only("pk", "engine", "external_job_id"):
        if run.engine == TrainingRun.Engine.PAI and run.external_job_id:
            if not pai_poll_scheduled(run.pk):
                pai_poll_schedule(run.pk, delay=0)
                reaped += 1
            continue
        if heartbeat_alive(run.pk):
            continue
        if training_run_fail(run.pk, error=WORKER_DIED, stage="worker stopped"):
            logger.warning("training run %s: worker died; marked failed", run.pk)
            reaped += 1
    return reaped


def training_runs_queued_reap(*, now) -> int:
    """Queued runs past the grace period whose RQ job no longer exists, or that have waited longer than the
    queue limit since they were (re)queued: queued again once, then failed with a plain reason. Each step is
    in the run's log. Returns how many were requeued or failed."""
    grace = timedelta(seconds=settings.MLAB_RUN_REAP_AFTER_SECONDS)
    limit = timedelta(seconds=settings.MLAB_RUN_QUEUE_LIMIT_SECONDS)
    queued = TrainingRun.objects.filter(status=Status.QUEUED, updated_at__lt=now - grace)
    reaped = 0
    for run in queued.only("pk", "rq_job_id", "requeues", "updated_at"):
        lost = not run.rq_job_id or not training_job_exists(run.rq_job_id)
        if not lost and run.updated_at >= now - limit:
            continue
        why = "its job was lost from the queue" if lost else "it waited too long in the queue"
        if run.requeues == 0:
            requeued = TrainingRun.objects.filter(pk=run.pk, status=Status.QUEUED, requeues=0).update(
                requeues=1, updated_at=timezone.now()
            )
            if requeued:
                training_run_log(run.pk, f"Queued again: {why}.", level="warning", stage="queued")
                training_run_enqueue(run.pk)
                reaped += 1
            continue
        hours = limit.total_seconds() / 3600
        duration = f"{hours:g} hour{'' if hours == 1 else 's'}"
        error = QUEUE_LOST if lost else QUEUE_TIMEOUT.format(duration=duration)
        if training_run_finish(
            run.pk, status=Status.FAILED, stage="never started", error=error, expected=(Status.QUEUED,)
        ):
            training_run_log(run.pk, error, level="error", stage="never started")
            logger.warning("training run %s: %s twice; marked failed", run.pk, why)
            reaped += 1
    return reaped
