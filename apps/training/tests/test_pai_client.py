"""The PAI client against the PAI emulator over real HTTP: success, retries, idempotent create, refusals,
job failures, stop, list by label, logs and output download, and a secret that never shows."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from apps.training.pai.client import (
    PaiClient,
    PaiConfigurationError,
    PaiError,
    PaiRefused,
    PaiUnavailable,
    job_state,
    map_status,
)
from apps.training.pai.request import RUN_LABEL
from apps.training.pai.statuses import SUCCESS_SEQUENCE, PaiStatus

from .pai_support import poll, stub_trainer_command

pytestmark = pytest.mark.slow


@pytest.fixture
def emulator(pai_emulator):
    pai_emulator.trainer_command = stub_trainer_command()
    return pai_emulator


@pytest.fixture
def client(emulator):
    return emulator.client(read_timeout=2, max_retries=3, backoff=0.01)


@pytest.fixture
def sample(tmp_path) -> Path:
    path = tmp_path / "sample.csv"
    path.write_text("age,clicked\n31,1\n45,0\n", encoding="utf-8")
    return path


def body_for(emulator, sample: Path, run_id: int | str = 1, **overrides):
    body = {
        "TrainingJobName": f"mlab-run-{run_id}",
        "WorkspaceId": emulator.workspace_id,
        "AlgorithmName": "mlab-trainer",
        "AlgorithmVersion": "v1.0.0",
        "HyperParameters": [{"Name": "maxIter", "Value": "100"}, {"Name": "labelColName", "Value": "clicked"}],
        "InputChannels": [{"Name": "train", "InputUri": sample.as_uri()}],
        "OutputChannels": [{"Name": "model", "OutputUri": f"oss://{emulator.bucket}/mlab/runs/{run_id}/output/"}],
        "ComputeResource": {"EcsCount": 1, "EcsSpec": "ecs.c6.xlarge"},
        "Scheduler": {"MaxRunningTimeInSeconds": 600},
        "Labels": [{"Key": RUN_LABEL, "Value": str(run_id)}, {"Key": "mlab-source", "Value": "mlab"}],
    }
    body.update(overrides)
    return body


def test_a_job_goes_through_pai_statuses_and_its_model_comes_back(emulator, client, sample, tmp_path):
    created = client.create_training_job(body_for(emulator, sample))
    assert not created.reused
    job, seen = poll(client, created.job_id)

    assert job["Status"] == PaiStatus.SUCCEED
    assert [s for s in seen if s in SUCCESS_SEQUENCE] == seen  # only statuses of the sequence, in its order
    assert [SUCCESS_SEQUENCE.index(s) for s in seen] == sorted(SUCCESS_SEQUENCE.index(s) for s in seen)
    transitions = job["StatusTransitions"]
    assert [t["Status"] for t in transitions] == list(SUCCESS_SEQUENCE)
    assert all(t["StartTime"] and t["EndTime"] and t["StartTime"] <= t["EndTime"] for t in transitions)
    assert all(a["EndTime"] <= b["StartTime"] for a, b in zip(transitions, transitions[1:], strict=False))
    assert map_status(job["Status"]) == ("succeeded", "PAI: finished")
    assert job_state(job) == ("succeeded", "PAI: finished", "")

    logs = client.get_training_job_logs(created.job_id)
    assert any("stub trainer: step 4/4" in line for line in logs)
    assert any(line.startswith("[Mlab PAI emulator]") for line in logs)

    model_uri = job["OutputModel"]["Uri"]
    assert model_uri == f"oss://{emulator.bucket}/mlab/runs/1/output/"  # echoed exactly as sent
    model = client.download_output(model_uri + "model.onnx", tmp_path / "dl" / "model.onnx")
    assert model.read_bytes() == b"STUB-ONNX:" + sample.read_bytes()
    report = json.loads(client.download_output(model_uri + "report.json", tmp_path / "dl" / "report.json").read_text())
    assert report["hyperparameters"] == {"maxIter": "100", "labelColName": "clicked"}
    assert {"PAI_CONFIG_DIR", "PAI_HPS", "PAI_INPUT_TRAIN", "PAI_OUTPUT_MODEL"} <= set(report["pai_env"])
    assert report["mlab_pai_env"] == []  # the job's process never sees Mlab's PAI keys
    assert {p.name for p in (tmp_path / "dl").iterdir()} == {"model.onnx", "report.json"}  # no temporary left


def test_5xx_answers_are_retried_until_one_succeeds(emulator, client, sample):
    emulator.faults.fail_next(2, status=503, action="CreateTrainingJob")
    created = client.create_training_job(body_for(emulator, sample))
    assert len(emulator.jobs()) == 1 and emulator.jobs()[0].job_id == created.job_id

    emulator.faults.fail_next(3, status=500, action="GetTrainingJob")
    assert client.get_training_job(created.job_id)["TrainingJobId"] == created.job_id
    assert emulator.faults.snapshot()["fail_next"] == []  # all three failures were consumed by retries


def test_5xx_that_outlast_the_retries_are_unavailable(emulator, sample):
    client = emulator.client(max_retries=2, backoff=0.01)
    emulator.faults.fail_next(5, status=500, action="ListTrainingJobs")
    with pytest.raises(PaiUnavailable, match="gave up after 3 attempts"):
        client.list_training_jobs({RUN_LABEL: "1"})
    assert emulator.faults.snapshot()["fail_next"][0]["count"] == 2


def test_a_timeout_after_pai_created_the_job_never_makes_a_second_one(emulator, sample):
    client = emulator.client(read_timeout=0.3, max_retries=5, backoff=0.01)
    emulator.faults.delay_next(0.6, when="after", action="CreateTrainingJob")
    created = client.create_training_job(body_for(emulator, sample, run_id=77))
    assert created.reused  # the retry found the job the timed-out attempt had made
    assert [job.job_id for job in emulator.jobs()] == [created.job_id]
    assert [j["TrainingJobId"] for j in client.list_training_jobs({RUN_LABEL: "77"})] == [created.job_id]


def test_a_timeout_before_pai_created_the_job_creates_it_once(emulator, sample):
    client = emulator.client(read_timeout=0.3, max_retries=5, backoff=0.01)
    emulator.faults.delay_next(0.6, when="before", action="CreateTrainingJob")
    created = client.create_training_job(body_for(emulator, sample, run_id=78))
    assert not created.reused
    assert [job.job_id for job in emulator.jobs()] == [created.job_id]


def test_creating_the_same_run_twice_returns_the_first_job(emulator, client, sample):
    first = client.create_training_job(body_for(emulator, sample, run_id=5))
    again = client.create_training_job(body_for(emulator, sample, run_id=5))
    assert again.job_id == first.job_id and again.reused
    other = client.create_training_job(body_for(emulator, sample, run_id=6))
    assert other.job_id != first.job_id
    assert len(emulator.jobs()) == 2


def test_4xx_is_not_retried(emulator, client, sample):
    emulator.faults.fail_next(1, status=500, action="GetTrainingJob")  # a canary: only a retry would consume it
    with pytest.raises(PaiRefused) as refused:
        client.get_training_job("trainnosuchjob0")
    assert (refused.value.status, refused.value.code) == (404, "TrainingJobNotFound")
    assert emulator.faults.snapshot()["fail_next"] == []  # the first attempt took the 500 ...

    with pytest.raises(PaiRefused) as refused:
        client.create_training_job(body_for(emulator, sample, WorkspaceId="someone-elses"))
    assert refused.value.status == 400 and "WorkspaceId" in refused.value.message
    assert emulator.jobs() == []

    emulator.faults.fail_next(1, status=403, action="StopTrainingJob")
    emulator.faults.fail_next(1, status=500, action="StopTrainingJob")
    with pytest.raises(PaiRefused):
        client.stop_training_job("anything")
    assert len(emulator.faults.snapshot()["fail_next"]) == 1  # ... and a 4xx stops at once: the 500 is left


def test_create_failed(emulator, client, sample):
    emulator.faults.create_failed("Insufficient quota in the workspace")
    job, seen = poll(client, client.create_training_job(body_for(emulator, sample)).job_id)
    assert seen[-1] == PaiStatus.CREATE_FAILED and PaiStatus.RUNNING not in seen
    status, stage, error = job_state(job)
    assert (status, stage) == ("failed", "PAI: the job could not be created")
    assert error == "PAI could not create the training job: Insufficient quota in the workspace (CreateFailed)."


def test_failed_mid_run(emulator, client, sample):
    emulator.trainer_command = stub_trainer_command(sleep=20)
    emulator.faults.fail_running("The node running the job was lost", after_seconds=0.1)
    created = client.create_training_job(body_for(emulator, sample))
    job, seen = poll(client, created.job_id)
    assert PaiStatus.RUNNING in seen and seen[-1] == PaiStatus.FAILED
    assert job_state(job)[0] == "failed"
    assert "The node running the job was lost" in job_state(job)[2]
    assert emulator.job(created.job_id).process.poll() is not None  # the trainer was stopped, not left behind


def test_a_trainer_that_exits_with_an_error_fails_the_job_with_its_last_words(emulator, client, sample):
    emulator.trainer_command = stub_trainer_command("--exit-code", "3")
    job, _ = poll(client, client.create_training_job(body_for(emulator, sample)).job_id)
    assert job["Status"] == PaiStatus.FAILED
    assert job["ReasonMessage"].startswith("The trainer exited with code 3")
    assert "bad data in column 'age'" in job_state(job)[2]


def test_an_input_that_cannot_be_read_fails_initialization(emulator, client, sample, tmp_path):
    missing = (tmp_path / "nowhere.csv").as_uri()
    body = body_for(emulator, sample, InputChannels=[{"Name": "train", "InputUri": missing}])
    job, seen = poll(client, client.create_training_job(body).job_id)
    assert seen[-1] == PaiStatus.INITIALIZE_FAILED and PaiStatus.RUNNING not in seen
    assert job_state(job)[:2] == ("failed", "PAI: the job could not start")
    assert "nowhere.csv does not exist" in job_state(job)[2]


def test_stop_terminates_the_trainer(emulator, client, sample):
    emulator.trainer_command = stub_trainer_command(sleep=30)
    created = client.create_training_job(body_for(emulator, sample))
    poll(client, created.job_id, until=lambda s: s == PaiStatus.RUNNING)
    client.stop_training_job(created.job_id)
    job, _ = poll(client, created.job_id)
    assert job["Status"] == PaiStatus.TERMINATED
    assert job_state(job)[:2] == ("cancelled", "PAI: stopped")
    assert emulator.job(created.job_id).process.poll() is not None
    client.stop_training_job(created.job_id)  # stopping a finished job is not an error
    assert client.get_training_job(created.job_id)["Status"] == PaiStatus.TERMINATED


def test_stop_before_the_trainer_starts(emulator, sample):
    emulator.step_delay = 0.5
    client = emulator.client(backoff=0.01)
    created = client.create_training_job(body_for(emulator, sample))
    client.stop_training_job(created.job_id)
    job, seen = poll(client, created.job_id)
    assert job["Status"] == PaiStatus.TERMINATED and PaiStatus.RUNNING not in seen
    assert emulator.job(created.job_id).process is None


def test_list_by_label_and_every_page(emulator, client, sample):
    ids = {run: client.create_training_job(body_for(emulator, sample, run_id=run)).job_id for run in (11, 12, 13)}
    assert [j["TrainingJobId"] for j in client.list_training_jobs({RUN_LABEL: "12"})] == [ids[12]]
    assert client.list_training_jobs({RUN_LABEL: "99"}) == []
    both = client.list_training_jobs({"mlab-source": "mlab"}, page_size=1)
    assert sorted(j["TrainingJobId"] for j in both) == sorted(ids.values())
    assert client.list_training_jobs({RUN_LABEL: "11", "mlab-source": "other"}) == []


def test_download_is_all_or_nothing(emulator, client, sample, tmp_path):
    # No OutputUri: the emulator serves the channel over http, which is what this test reads.
    body = body_for(emulator, sample, OutputChannels=[{"Name": "model"}])
    job, _ = poll(client, client.create_training_job(body).job_id)
    dest = tmp_path / "out" / "model.onnx"
    with pytest.raises(PaiRefused) as refused:
        client.download_output(job["OutputModel"]["Uri"] + "missing.onnx", dest)
    assert refused.value.status == 404
    with pytest.raises(PaiRefused):
        client.download_output(job["OutputModel"]["Uri"] + "../../../../etc/passwd", dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # no partial or temporary file remains
    # oss:// goes through the OSS store: a bucket the emulator's OSS does not have is a plain 404.
    with pytest.raises(PaiError, match=r"oss://mlab-data/runs/1/output/model.onnx does not exist"):
        client.download_output("oss://mlab-data/runs/1/output/model.onnx", dest)
    assert list(dest.parent.iterdir()) == []
    with pytest.raises(PaiError, match="http"):
        client.download_output("ftp://example.com/model.onnx", dest)


def test_a_bad_signature_is_refused(emulator, sample):
    wrong_secret = PaiClient(
        emulator.endpoint, emulator.access_key_id, "not-the-secret", emulator.workspace_id, backoff=0.01
    )
    with pytest.raises(PaiRefused) as refused:
        wrong_secret.list_training_jobs()
    assert (refused.value.status, refused.value.code) == (403, "SignatureDoesNotMatch")

    unknown_key = PaiClient(emulator.endpoint, "someone", emulator.access_key_secret, emulator.workspace_id)
    with pytest.raises(PaiRefused) as refused:
        unknown_key.get_training_job("x")
    assert (refused.value.status, refused.value.code) == (401, "InvalidAccessKeyId.NotFound")
    assert emulator.jobs() == []


def test_the_secret_never_shows(emulator, sample, caplog):
    secret = emulator.access_key_secret
    client = emulator.client(read_timeout=0.3, max_retries=3, backoff=0.01)
    caplog.set_level(logging.DEBUG)
    emulator.faults.delay_next(0.6, when="after", action="CreateTrainingJob")
    created = client.create_training_job(body_for(emulator, sample))
    poll(client, created.job_id)
    emulator.faults.fail_next(5, action="GetTrainingJob")
    with pytest.raises(PaiUnavailable) as unavailable:
        client.get_training_job(created.job_id)
    errors = [str(unavailable.value), repr(client), str(vars(client))]
    try:
        PaiClient(emulator.endpoint, emulator.access_key_id, secret + "x", emulator.workspace_id).list_training_jobs()
    except PaiRefused as refused:
        errors.append(str(refused))
    assert caplog.text  # the flow did log (retries, creation), just never the secret
    for text in (caplog.text, *errors):
        assert secret not in text


def test_client_from_settings():
    configured = SimpleNamespace(
        MLAB_PAI_ENDPOINT="pai.cn-hangzhou.aliyuncs.com",
        MLAB_PAI_ACCESS_KEY_ID="id",
        MLAB_PAI_ACCESS_KEY_SECRET="secret-value",
        MLAB_PAI_WORKSPACE_ID="ws",
        MLAB_PAI_READ_TIMEOUT=12.0,
        MLAB_PAI_MAX_RETRIES=2,
    )
    client = PaiClient.from_settings(configured)
    assert (client.base_url, client.host, client.timeout, client.max_retries) == (
        "https://pai.cn-hangzhou.aliyuncs.com",
        "pai.cn-hangzhou.aliyuncs.com",
        (5.0, 12.0),
        2,
    )
    with pytest.raises(PaiConfigurationError) as missing:
        PaiClient.from_settings(SimpleNamespace(MLAB_PAI_ENDPOINT="x", MLAB_PAI_ACCESS_KEY_SECRET="secret-value"))
    assert "MLAB_PAI_ACCESS_KEY_ID" in str(missing.value) and "MLAB_PAI_WORKSPACE_ID" in str(missing.value)
    assert "secret-value" not in str(missing.value)


@pytest.mark.parametrize(
    ("pai", "ours"),
    [
        ("Creating", "queued"),
        ("Created", "queued"),
        ("Initializing", "queued"),
        ("Submitted", "queued"),
        ("Running", "running"),
        ("Succeed", "succeeded"),
        ("Failed", "failed"),
        ("CreateFailed", "failed"),
        ("InitializeFailed", "failed"),
        ("Terminated", "cancelled"),
        ("Restarting", "running"),  # a status PAI may add later: still in progress, keep polling
    ],
)
def test_map_status(pai, ours):
    status, stage = map_status(pai)
    assert status == ours and stage.startswith("PAI: ") and len(stage) <= 64
