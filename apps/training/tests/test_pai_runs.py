"""PAI runs end to end: Mlab's engine against the PAI emulator over real HTTP, the emulator running Mlab's
real trainer in a subprocess, polling by re-enqueued RQ jobs."""

from __future__ import annotations

import json
import time

import pytest

from apps.artifacts.models import Artifact
from apps.artifacts.storage import artifact_read
from apps.training.jobs import run_training
from apps.training.models import TrainingRun
from apps.training.tests.runs_support import run_queued_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
Status = TrainingRun.Status


IMAGE = "emulator.example/mlab/python:3.11"


@pytest.fixture
def pai(pai_emulator, settings, tmp_path):
    """The emulator, Mlab pointed at it as at a real account: jobs carry an inline AlgorithmSpec running the
    trainer's code from OSS, the sample goes up to OSS and the model comes back from it."""
    for name, value in pai_emulator.settings().items():
        setattr(settings, name, value)
    settings.MLAB_PAI_ALGORITHM_NAME = ""
    settings.MLAB_PAI_IMAGE = IMAGE
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


@pytest.mark.parametrize("spec", ["inline", "registered"])
def test_a_pai_run_trains_with_mlabs_trainer_and_transfers_the_model(
    api, client, business_user, builtin_templates, duck_source, pai, django_capture_on_commit_callbacks, settings, spec
):
    if spec == "registered":
        settings.MLAB_PAI_ALGORITHM_NAME = pai.settings()["MLAB_PAI_ALGORITHM_NAME"]
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
    # The data travelled through OSS: the job read the staged sample and wrote under the run's output prefix.
    state = run.external_state
    store = pai.oss_store()
    assert state["input_uri"] == store.uri(store.run_input_key(run.pk, "sample.npz"))
    assert state["output_uri"] == store.uri(store.run_output_prefix(run.pk))
    assert job.body["InputChannels"][0]["InputUri"] == state["input_uri"]
    assert job.body["OutputChannels"][0]["OutputUri"] == state["output_uri"]
    assert ("AlgorithmSpec" in job.body) == (spec == "inline")
    assert state["status"] == "Succeed"
    if spec == "inline":  # the spec declares ProgressDefinitions, so PAI shows the trainer's own progress
        assert state["progress"] == 100
    assert store.read_bytes(state["output_uri"] + "model.onnx") == artifact_read(run.artifact)
    # The run page shows where the job's data is and what PAI says of it.
    client.force_login(business_user)
    page = client.get(f"/admin/training/trainingrun/{run.pk}/change/").content.decode()
    for shown in (run.external_job_id, state["input_uri"], state["output_uri"], "Succeed"):
        assert shown in page
    assert 'id="mlab-pai-console"' not in page  # an emulator has no console


def _submitted(api, source, pai, django_capture_on_commit_callbacks):
    """Launch a run, submit it, and wait until its PAI job has finished (no poll has looked yet)."""
    run_id = _launch(api, source, django_capture_on_commit_callbacks)
    run_queued_jobs(with_scheduler=False)  # the submission only: polls are scheduled for later
    run = TrainingRun.objects.get(pk=run_id)
    assert run.external_job_id, run.error
    pai.wait(run.external_job_id, timeout=120)
    return run


def test_no_model_in_the_output_fails_the_run_listing_what_is_there(
    api, builtin_templates, duck_source, pai, django_capture_on_commit_callbacks
):
    run = _submitted(api, duck_source, pai, django_capture_on_commit_callbacks)
    pai.oss_store().delete(run.external_state["output_uri"] + "model.onnx")
    run = _work_until_finished(run.pk)
    assert run.status == Status.FAILED and run.artifact_id is None
    assert "There is no model.onnx in the job's output" in run.error and "it holds: report.json" in run.error


@pytest.mark.parametrize("damage", ["other-bytes", "failed-parity"])
def test_a_model_that_fails_its_checks_is_never_stored(
    api, builtin_templates, duck_source, pai, django_capture_on_commit_callbacks, damage
):
    run = _submitted(api, duck_source, pai, django_capture_on_commit_callbacks)
    store, output = pai.oss_store(), run.external_state["output_uri"]
    _, prefix = output.removeprefix("oss://").split("/", 1)
    report = json.loads(store.read_bytes(output + "report.json"))
    if damage == "other-bytes":
        store.upload_bytes(b"x" * report["model_file"]["size"], prefix + "model.onnx")
    else:
        report["parity"]["max_abs_diff"] = 0.5
        store.upload_bytes(json.dumps(report).encode(), prefix + "report.json")
    run = _work_until_finished(run.pk)
    assert run.status == Status.FAILED and run.artifact_id is None
    assert ("sha256" if damage == "other-bytes" else "parity") in run.error
    assert not Artifact.objects.exists()


def test_a_job_deleted_outside_mlab_fails_the_run_saying_so(
    api, builtin_templates, duck_source, pai, django_capture_on_commit_callbacks
):
    pai.step_delay = 0.5
    run_id = _launch(api, duck_source, django_capture_on_commit_callbacks)
    run_queued_jobs(with_scheduler=False)
    run = TrainingRun.objects.get(pk=run_id)
    pai.delete_job(run.external_job_id)  # as someone would in the PAI console
    run = _work_until_finished(run_id)
    assert run.status == Status.FAILED
    assert run.error == (
        f"The PAI job {run.external_job_id} no longer exists: it was deleted outside Mlab. Relaunch the run."
    )


def test_a_training_that_outlasts_many_poll_intervals_is_followed_to_the_end(
    api, builtin_templates, duck_source, pai, django_capture_on_commit_callbacks
):
    pai.step_delay = 1.0  # each PAI status before Running lasts a second: many poll intervals (0.05 s)
    run = _work_until_finished(_launch(api, duck_source, django_capture_on_commit_callbacks), timeout=180)
    assert run.status == Status.SUCCEEDED, run.error
    assert pai.job(run.external_job_id).reads >= 10


@pytest.mark.parametrize("principal", ["client", "job"])
def test_an_oss_refusal_fails_the_run_naming_the_location(
    api, builtin_templates, duck_source, pai, django_capture_on_commit_callbacks, principal
):
    store = pai.oss_store()
    verbs = ("write",) if principal == "client" else ("read",)
    pai.oss_faults.deny(f"{pai.bucket}/{store.key('runs')}", verbs=verbs, principal=principal)
    run = _work_until_finished(_launch(api, duck_source, django_capture_on_commit_callbacks))
    assert run.status == Status.FAILED and run.artifact_id is None
    sample = store.uri(store.run_input_key(run.pk, "sample.npz"))
    if principal == "job":
        assert f"the PAI workspace role cannot read {sample}" in run.error
    else:
        assert "oss://" in run.error and "write" in run.error.lower()
    secret = pai.settings()["MLAB_PAI_ACCESS_KEY_SECRET"]
    assert secret not in run.error and all(secret not in m for m in run.events.values_list("message", flat=True))


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
