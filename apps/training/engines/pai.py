"""The PAI engine: read the sample, submit a CreateTrainingJob, poll with re-enqueued RQ jobs (no worker
waits for the training), stop on cancel, and transfer the trained model into Mlab once.

The job PAI runs is Mlab's trainer (``python -m apps.training.trainer --hyperparameters …``), so a PAI run
produces the same artifact as a local one. The sample reaches the job through its input channel: a file URI
that the PAI emulator reads; the real service reads ``oss://`` (uploading needs the OSS SDK, not shipped).
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import onnx
from django.conf import settings

from apps.training import trainer
from apps.training.datasources import DataSourceError
from apps.training.heartbeat import Heartbeat
from apps.training.models import TrainingRun
from apps.training.pai.client import PaiClient, PaiConfigurationError, PaiError, PaiRefused, job_state
from apps.training.pai.data_path import SAMPLE_NAME, fetch_output, output_uri, stage_sample
from apps.training.pai.oss import OssError, OssStore
from apps.training.pai.request import JobSettings, create_job_body
from apps.training.pai.statuses import CANCELLED, FAILED, SUCCEEDED
from apps.training.pai.trainer_code import upload_trainer_code
from apps.training.pai_polls import pai_poll_clear, pai_poll_failure_add, pai_poll_failures_reset, pai_poll_schedule
from apps.training.services import runs as run_services
from mlab_client.contract import META_SIGNATURE
from mlabsite.locks import LockNotAcquired, RedisLock

from .sample import fetch_run_sample, trainer_sample

logger = logging.getLogger(__name__)
Status = TrainingRun.Status

# Progress while PAI works: submitted 15 %, then each PAI status a step further; the transfer is 95 %.
PAI_PROGRESS = {"Creating": 18, "Created": 20, "Initializing": 25, "Submitted": 30, "Running": 50}
# While the job runs, the trainer's own progress (0–100, reported to PAI) maps onto 35–90 %.
RUNNING_FROM, RUNNING_SPAN = 35, 55
MAX_POLL_FAILURES = 20


def _client() -> PaiClient:
    return PaiClient.from_settings(settings)


def plain_pai_error(error: Exception) -> str:
    if isinstance(error, OssError):
        return str(error)  # already plain, and names the oss:// location
    if isinstance(error, PaiConfigurationError):
        return f"PAI is not configured on this Mlab server: {error}"
    if isinstance(error, PaiRefused):
        return f"PAI refused the request: {error}"
    if isinstance(error, PaiError):
        return f"PAI could not be reached: {error}"
    return str(error)


def _oss(client: PaiClient) -> OssStore:
    if client.oss is None:
        raise PaiConfigurationError(
            "OSS is not configured: the sample and the trainer's code reach PAI through OSS. Set MLAB_OSS_BUCKET, "
            "MLAB_OSS_REGION and MLAB_OSS_ENDPOINT (manage.py pai_check tests them)."
        )
    return client.oss


def console_url(job_id: str) -> str:
    """The PAI console's page of the job, for a real region's endpoint (empty for an emulator or a custom one)."""
    host = urlsplit(settings.MLAB_PAI_ENDPOINT).hostname or ""
    match = re.fullmatch(r"pai\.([a-z0-9-]+)\.aliyuncs\.com", host)
    if match is None or not settings.MLAB_PAI_CONSOLE_URL:
        return ""
    return settings.MLAB_PAI_CONSOLE_URL.format(region=match[1], workspace=settings.MLAB_PAI_WORKSPACE_ID, job=job_id)


def submit(run: TrainingRun) -> None:
    """Read the sample and stage it on OSS (with the trainer's code, uploaded once per version), create the PAI
    job (idempotently: a label carries the run id) and schedule the poll."""
    with Heartbeat(run.pk) as beat:
        if not beat.claimed:
            return
        run.refresh_from_db()
        if run.is_finished:
            return
        if run.status == Status.QUEUED and not run_services.training_run_start(run.pk, stage="sampling"):
            return
        if run.external_job_id:  # submitted by an earlier delivery: just make sure someone polls it
            pai_poll_schedule(run.pk)
            return
        try:
            client = _client()
            store = _oss(client)
            job_settings = JobSettings.from_settings(settings)
            run_services.training_run_progress(run.pk, stage="sampling", progress=2, message="Reading the sample")
            sample = fetch_run_sample(run)
            run_services.training_run_log(run.pk, f"Sample read: {len(sample):,} rows.", stage="sampling")
            run_services.training_run_progress(
                run.pk, stage="uploading", progress=8, message="Uploading the sample and the trainer to OSS"
            )
            code = upload_trainer_code(store)
            with tempfile.TemporaryDirectory(prefix=f"mlab-pai-{run.pk}-", dir=_staging_dir()) as tmp:
                path = Path(tmp) / SAMPLE_NAME
                trainer.save_sample(path, trainer_sample(sample))
                del sample
                staged = stage_sample(store, run.pk, path)
            body = create_job_body(
                run_id=run.pk,
                payload=run.payload,
                input_uri=staged.uri,
                output_uri=output_uri(store, run.pk),
                settings=job_settings,
                code=code,
            )
            created = client.create_training_job(body)
        except DataSourceError as error:
            run_services.training_run_fail(run.pk, error=f"The sample could not be read from the data source: {error}")
            return
        except PaiError as error:
            run_services.training_run_fail(run.pk, error=plain_pai_error(error))
            return
        run_services.training_run_submitted(
            run.pk,
            external_job_id=created.job_id,
            reused=created.reused,
            input_uri=staged.uri,
            output_uri=output_uri(store, run.pk),
            console_url=console_url(created.job_id),
        )
        pai_poll_schedule(run.pk)


def _staging_dir() -> Path:
    directory = Path(settings.MLAB_PAI_DATA_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def poll(run_id: int) -> None:
    """One look at the PAI job; schedules the next one unless the run ended. Safe to run twice."""
    run = TrainingRun.objects.select_related("datasource").filter(pk=run_id).first()
    if run is None or run.is_finished or not run.external_job_id:
        pai_poll_clear(run_id)
        return
    try:
        client = _client()
        job = client.get_training_job(run.external_job_id)
        if run.cancel_requested and job.get("Status") not in ("Succeed", "Failed", "Terminated"):
            client.stop_training_job(run.external_job_id)
    except PaiRefused as error:
        gone = error.status == 404 or "NotFound" in error.code or "NotExist" in error.code
        message = (
            f"The PAI job {run.external_job_id} no longer exists: it was deleted outside Mlab. Relaunch the run."
            if gone
            else plain_pai_error(error)
        )
        run_services.training_run_fail(run_id, error=message)
        pai_poll_clear(run_id)
        return
    except PaiError as error:
        failures = pai_poll_failure_add(run_id)
        if failures >= MAX_POLL_FAILURES:
            run_services.training_run_fail(run_id, error=plain_pai_error(error) + f" ({failures} polls in a row).")
            pai_poll_clear(run_id)
            return
        run_services.training_run_log(run_id, f"{plain_pai_error(error)} Trying again.", level="warning")
        pai_poll_schedule(run_id, backoff=failures)
        return
    pai_poll_failures_reset(run_id)
    status, stage, failure = job_state(job)
    reported = _reported_progress(job)
    run_services.training_run_external_observed(
        run_id, status=str(job.get("Status", "")), reason=str(job.get("ReasonMessage") or ""), progress=reported
    )
    if status == SUCCEEDED:
        transfer(run, job)
        pai_poll_clear(run_id)
    elif status == FAILED:
        run_services.training_run_fail(run_id, error=failure, stage=stage)
        pai_poll_clear(run_id)
    elif status == CANCELLED:
        message = "Cancelled; the PAI job was stopped." if run.cancel_requested else failure
        if run.cancel_requested:
            run_services.training_run_mark_cancelled(run_id, message=message)
        else:
            run_services.training_run_fail(run_id, error=message, stage=stage)
        pai_poll_clear(run_id)
    else:
        progress = PAI_PROGRESS.get(job.get("Status", ""), 50)
        if job.get("Status") == "Running" and reported is not None:
            progress = RUNNING_FROM + round(RUNNING_SPAN * reported / 100)
        run_services.training_run_progress(run_id, stage=stage, progress=progress, message=stage)
        pai_poll_schedule(run_id)


def _reported_progress(job: dict) -> float | None:
    """The trainer's own progress as PAI reports it (LatestProgress.OverallProgress, 0–100), if any."""
    value = ((job.get("LatestProgress") or {}).get("OverallProgress") or {}).get("Value")
    try:
        return max(0.0, min(100.0, float(value))) if value is not None else None
    except (TypeError, ValueError):
        return None


def stop(run_id: int) -> None:
    """Ask PAI to stop the run's job (the poll sees Terminated and marks the run cancelled)."""
    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is None or run.is_finished or not run.external_job_id:
        return
    try:
        _client().stop_training_job(run.external_job_id)
    except PaiError as error:
        run_services.training_run_log(run_id, f"Stopping the PAI job failed: {plain_pai_error(error)}", level="warning")


def transfer(run: TrainingRun, job: dict) -> None:
    """Bring the job's model into Mlab exactly once, however many servers poll: a per-run lock, and a fenced
    write that a paused (stale) holder cannot make after a newer one."""
    try:
        with RedisLock(f"transfer:run:{run.pk}", timeout=60) as lease:
            run.refresh_from_db()
            if run.is_finished:
                return
            run_services.training_run_progress(
                run.pk, stage="transferring", progress=95, message="Copying the trained model from PAI"
            )
            store = _oss(_client())
            output = (job.get("OutputModel") or {}).get("Uri") or run.external_state.get("output_uri") or ""
            if not output:
                raise PaiError("PAI reported success but no model output location.")
            with tempfile.TemporaryDirectory(prefix=f"mlab-pai-{run.pk}-", dir=_staging_dir()) as tmp:
                fetched = fetch_output(store, output, tmp, max_model_bytes=settings.MLAB_OSS_MAX_DOWNLOAD_BYTES)
                onnx_bytes = fetched.model_path.read_bytes()
            report = fetched.report
            _check_artifact(onnx_bytes, report)
            run_services.training_run_log(
                run.pk, f"The model of PAI job {run.external_job_id} was transferred.", stage="transferring"
            )
            run_services.training_run_succeed(run.pk, onnx_bytes=onnx_bytes, report=report, fence=lease.fence)
    except LockNotAcquired:
        pai_poll_schedule(run.pk)  # another server is transferring; look again shortly
    except (PaiError, ValueError, OSError) as error:
        run_services.training_run_fail(
            run.pk, error=f"The job succeeded on PAI but its model could not be transferred: {error}"
        )


def _check_artifact(onnx_bytes: bytes, report: dict) -> None:
    """A transferred model must be what the trainer writes: the contract's metadata and a passed parity check."""
    model = onnx.load_from_string(onnx_bytes)
    if META_SIGNATURE not in {p.key for p in model.metadata_props}:
        raise ValueError("the model has no Mlab signature")
    parity = report.get("parity") or {}
    if not parity.get("max_abs_diff", float("inf")) <= parity.get("tolerance", 0):
        raise ValueError("the report does not show a passed parity check")
