"""pai_check, pai_register_algorithm and pai_cleanup against the PAI emulator, through call_command."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command

from apps.training.management.commands.pai_cleanup import parse_age
from apps.training.pai.data_path import output_uri, stage_sample
from apps.training.pai.request import JobSettings, create_job_body
from apps.training.pai.statuses import PaiStatus
from apps.training.pai.trainer_code import trainer_archive
from apps.training.trainer import save_sample

from .pai_support import poll
from .trainer_data import builtin_payload, click_sample

pytestmark = pytest.mark.slow
IMAGE = "emulator.example/mlab/python:3.11"


@pytest.fixture
def pai(pai_emulator, settings):
    for name, value in pai_emulator.settings().items():
        setattr(settings, name, value)
    settings.MLAB_PAI_ALGORITHM_NAME = ""
    settings.MLAB_PAI_IMAGE = IMAGE
    settings.MLAB_PAI_BACKOFF = 0.01
    settings.MLAB_PAI_MAX_RETRIES = 1
    return pai_emulator


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _failing(*args) -> tuple[str, str]:
    out = io.StringIO()
    with pytest.raises(CommandError) as failed:
        call_command(*args, stdout=out)
    return out.getvalue(), str(failed.value)


def test_pai_check_says_the_account_is_ready_and_touches_nothing(pai):
    out = _run("pai_check")
    assert "ok   credentials: Signing with AccessKey emulator-access-key-id." in out
    assert "Signed a ListTrainingJobs call" in out
    assert "inline AlgorithmSpec running image emulator.example/mlab/python:3.11" in out
    for permission in ("oss:PutObject", "oss:GetObject", "oss:DeleteObject"):
        assert f"ok   OSS {permission}" in out
    assert "PAI is ready" in out
    assert pai.oss_state.keys(pai.bucket) == [] and pai.jobs() == []  # the probe object went, no job was made
    assert pai.access_key_secret not in out


def test_pai_check_names_each_missing_permission(pai):
    pai.faults.deny("ListTrainingJobs")
    pai.oss_faults.deny(f"{pai.bucket}/mlab/", verbs=("read",))
    out, error = _failing("pai_check")
    assert "FAIL PAI: The account may not call ListTrainingJobs in workspace emulator-workspace: grant it " in out
    assert "paistudio:ListTrainingJobs" in out
    assert "ok   OSS oss:PutObject" in out
    assert "FAIL OSS oss:GetObject: Mlab's credentials (AccessKey emulator-access-key-id) cannot read oss://" in out
    assert "Grant oss:GetObject on acs:oss:*:*:mlab-emulator/mlab/*" in out
    assert "2 check(s) failed" in error


def test_pai_check_explains_a_wrong_secret_and_missing_settings(pai, settings):
    settings.MLAB_PAI_ACCESS_KEY_SECRET = "not-the-secret"
    out, _ = _failing("pai_check")
    assert "the AccessKey secret does not match the AccessKey id (SignatureDoesNotMatch)" in out
    assert "OSS oss:PutObject" in out and "cannot write" in out
    assert "not-the-secret" not in out

    settings.MLAB_PAI_ACCESS_KEY_SECRET = pai.access_key_secret
    settings.MLAB_OSS_BUCKET = ""
    settings.MLAB_PAI_IMAGE = ""
    out, _ = _failing("pai_check")
    assert "FAIL job spec: Jobs carry an inline AlgorithmSpec: set MLAB_PAI_IMAGE." in out
    assert "FAIL OSS: OSS is not configured: set MLAB_OSS_BUCKET." in out

    settings.MLAB_PAI_ACCESS_KEY_ID = ""
    out, _ = _failing("pai_check")
    assert "MLAB_PAI_ACCESS_KEY_ID" in out


def test_pai_register_algorithm_registers_once_and_jobs_run_it(pai, settings, tmp_path):
    out = _run("pai_register_algorithm")
    assert f"mlab-trainer-{trainer_archive().sha256}.tar.gz (uploaded)" in out
    assert "Created the algorithm mlab-trainer" in out and "Registered mlab-trainer v1.0.0." in out
    [algorithm] = pai.algorithms.find(name="mlab-trainer")
    spec, _ = algorithm.versions["v1.0.0"]
    assert {"mlabPlan", "labelColName", "maxIter", "treeCount"} <= {h["Name"] for h in spec["HyperParameters"]}

    again = _run("pai_register_algorithm")
    assert "(already on OSS)" in again and "already registered with this trainer: nothing to do" in again

    settings.MLAB_PAI_IMAGE = "emulator.example/mlab/python:3.12"
    _, refused = _failing("pai_register_algorithm")
    assert "register this trainer as v1.0.1" in refused
    assert "Registered mlab-trainer v1.0.1." in _run("pai_register_algorithm", "--algorithm-version", "v1.0.1")

    # A job of the registered algorithm runs Mlab's trainer from the registered code.
    store = pai.oss_store()
    sample, _ = click_sample(1500, seed=5)
    save_sample(tmp_path / "s.npz", sample)
    body = create_job_body(
        run_id=31,
        payload=builtin_payload("binary-lr"),
        input_uri=stage_sample(store, 31, tmp_path / "s.npz").uri,
        output_uri=output_uri(store, 31),
        settings=JobSettings(workspace_id=pai.workspace_id, algorithm_name="mlab-trainer", algorithm_version="v1.0.0"),
    )
    client = pai.client(backoff=0.01)
    job, _ = poll(client, client.create_training_job(body).job_id, timeout=120)
    assert job["Status"] == PaiStatus.SUCCEED, job["ReasonMessage"]
    assert store.head(job["OutputModel"]["Uri"] + "model.onnx") is not None


def test_pai_cleanup_deletes_old_runs_only(pai):
    store = pai.oss_store(multipart_threshold=1024 * 1024)
    for run in ("1", "2"):
        store.upload_bytes(b"sample " + run.encode(), store.run_input_key(run))
        store.upload_bytes(b"model " + run.encode(), store.run_output_prefix(run) + "model.onnx")
    store.upload_bytes(b"code", store.code_key("c0de"))
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=8)
    for key in pai.oss_state.keys(pai.bucket):
        if "/runs/1/" in key or "/code/" in key:
            pai.oss_state.set_last_modified(pai.bucket, key, old)
    started = store.client.initiate_multipart_upload(
        __import__("alibabacloud_oss_v2").InitiateMultipartUploadRequest(bucket=pai.bucket, key=store.run_input_key(3))
    )
    for upload in pai.oss_state.uploads(pai.bucket):
        upload.initiated = old

    dry = _run("pai_cleanup", "--older-than", "7d", "--dry-run")
    assert "Would delete 2 object(s)" in dry and "of 1 run(s)" in dry and ": 1." in dry
    assert len(pai.oss_state.keys(pai.bucket)) == 5

    out = _run("pai_cleanup", "--older-than", "7d")
    assert "Deleted 2 object(s)" in out and "Aborted 1 unfinished multipart upload(s)." in out
    left = pai.oss_state.keys(pai.bucket)
    assert left == sorted(
        [store.code_key("c0de"), store.run_input_key("2"), store.run_output_prefix("2") + "model.onnx"]
    )
    assert not pai.oss_state.uploads(pai.bucket) and started.upload_id
    assert "No run under" in _run("pai_cleanup", "--older-than", "7d")


def test_pai_cleanup_refuses_a_bad_age(pai):
    with pytest.raises(ValueError):
        parse_age("a week")
    assert parse_age("12h") == dt.timedelta(hours=12)
    _, error = _failing("pai_cleanup", "--older-than", "0d")
    assert "7d, 12h or 30m" in error
