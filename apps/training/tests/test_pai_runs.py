"""PAI runs end to end: Mlab's engine against the PAI emulator over real HTTP, the emulator running Mlab's
real trainer in a subprocess, polling by re-enqueued RQ jobs."""

from __future__ import annotations

import time

import pytest

from apps.training.jobs import run_training
from apps.training.models import TrainingRun
from apps.training.tests.runs_support import run_queued_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
Status = TrainingRun.Status


@pytest.fixture
def pai(pai_emulator, settings, tmp_path):
    for name, value in pai_emulator.settings().items():
        setattr(settings, name, value)
    settings.MLAB_PAI_POLL_SECONDS = 0.05
    settings.MLAB_PAI_DATA_DIR = tmp_path / "pai-inputs"
    settings.MLAB_PAI_MAX_RETRIES = 3
    settings.MLAB_PAI_BACKOFF = 0.01
    settings.MLAB_PAI_READ_TIMEOUT = 1.0
    return pai_emulator


def _launch(api, source, django_capture_on_commit_callbacks, slug="binary-lr", params=None) -> int:
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/runs/",
            {"template": slug, "datasource": source.name, "engine": "pai", "params": params or {}},
            format="json",
        )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _work_until_finished(run_id: int, timeout: float = 90) -> TrainingRun:
    """Act as the worker (with its scheduler) until the run ends: submission, then the re-enqueued polls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_queued_jobs()
        run = TrainingRun.objects.get(pk=run_id)
        if run.is_finished:
            return run
        time.sleep(0.05)
    pytest.fail(f"run {run_id} did not finish: {TrainingRun.objects.get(pk=run_id).stage}")


def test_a_pai_run_trains_with_mlabs_trainer_and_transfers_the_model(
    api, builtin_templates, duck_source, pai, django_capture_on_commit_callbacks
):
    run_id = _launch(api, duck_source, django_capture_on_commit_callbacks)
    run = _work_until_finished(run_id)
    assert run.status == Status.SUCCEEDED, run.error
    assert run.external_job_id and run.artifact_id and run.transfer_fence > 0
    assert 0.7 < run.metrics["auc"] < 0.88
    assert run.report["parity"]["max_abs_diff"] <= 1e-5
    [job] = pai.jobs()
    assert job.job_id == run.external_job_id
    messages = list(run.events.values_list("message", flat=True))
    assert any(f"PAI job {run.external_job_id} created" in m for m in messages)
    assert "PAI: training" in run.events.values_list("stage", flat=True)
    assert messages[-2] == f"The model of PAI job {run.external_job_id} was transferred."
    assert messages[-1].startswith("Succeeded: ") and f"auc {run.metrics['auc']:.4g}" in messages[-1]


def test_5xx_answers_are_retried(api, builtin_templates, duck_source, pai, django_capture_on_commit_callbacks):
    pai.faults.fail_next(2, status=503)
    run = _work_until_finished(_launch(api, duck_source, django_capture_on_commit_callbacks))
    assert run.status == Status.SUCCEEDED, run.error
    assert len(pai.jobs()) == 1


def test_a_timed_out_create_does_not_make_a_second_job(
    api, builtin_templates, duck_source, pai, django_capture_on_commit_callbacks
):
    pai.faults.delay_next(2.0, when="after", action="CreateTrainingJob")  # created, but the answer is late
    run = _work_until_finished(_launch(api, duck_source, django_capture_on_commit_callbacks))
    assert run.status == Status.SUCCEEDED, run.error
    assert len(pai.jobs()) == 1


def test_a_second_delivery_of_the_submission_reuses_the_job(
    api, builtin_templates, duck_source, pai, django_capture_on_commit_callbacks
):
    run_id = _launch(api, duck_source, django_capture_on_commit_callbacks)
    run_training(run_id)
    run_training(run_id)  # RQ delivers at least once
    run = _work_until_finished(run_id)
    assert run.status == Status.SUCCEEDED and len(pai.jobs()) == 1


def test_create_failed_fails_the_run_with_pais_reason(
    api, builtin_templates, duck_source, pai, django_capture_on_commit_callbacks
):
    pai.faults.create_failed("Quota exceeded for the workspace")
    run = _work_until_finished(_launch(api, duck_source, django_capture_on_commit_callbacks))
    assert run.status == Status.FAILED
    assert "PAI could not create the training job" in run.error and "Quota exceeded" in run.error
    assert run.artifact_id is None


def test_a_job_failing_on_pai_fails_the_run(
    api, builtin_templates, duck_source, pai, django_capture_on_commit_callbacks
):
    pai.faults.fail_running("The node ran out of memory", after_seconds=0.1)
    run = _work_until_finished(_launch(api, duck_source, django_capture_on_commit_callbacks))
    assert run.status == Status.FAILED
    assert "failed on PAI" in run.error and "out of memory" in run.error


def test_bad_data_reported_by_the_trainer_on_pai_reaches_the_run(
    api, builtin_templates, duck_source, pai, django_capture_on_commit_callbacks
):
    params = {"sample": {"filters": [{"column": "clicked", "op": "=", "value": 0}]}}
    run = _work_until_finished(_launch(api, duck_source, django_capture_on_commit_callbacks, params=params))
    assert run.status == Status.FAILED
    assert "one class" in run.error


def test_cancel_stops_the_pai_job(api, builtin_templates, duck_source, pai, django_capture_on_commit_callbacks):
    pai.step_delay = 0.5  # slow enough to cancel while PAI prepares the job
    run_id = _launch(api, duck_source, django_capture_on_commit_callbacks, slug="binary-gbdt")
    run_queued_jobs()  # submitted
    run = TrainingRun.objects.get(pk=run_id)
    assert run.status == Status.RUNNING and run.external_job_id
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(f"/api/v1/runs/{run_id}/cancel/").status_code == 200
    run = _work_until_finished(run_id)
    assert run.status == Status.CANCELLED and run.artifact_id is None
    assert pai.job(run.external_job_id).status == "Terminated"


def test_pai_not_configured_fails_in_plain_words(
    api, builtin_templates, duck_source, settings, django_capture_on_commit_callbacks
):
    settings.MLAB_PAI_ENDPOINT = ""
    run_id = _launch(api, duck_source, django_capture_on_commit_callbacks)
    run_queued_jobs()
    run = TrainingRun.objects.get(pk=run_id)
    assert run.status == Status.FAILED
    assert run.error.startswith("PAI is not configured on this Mlab server") and "MLAB_PAI_ENDPOINT" in run.error
