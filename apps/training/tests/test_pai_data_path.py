"""The PAI data path end to end against the emulator, as the pai engine will drive it: the trainer's code
archive and the sample up to OSS, an inline AlgorithmSpec running Mlab's real trainer from its unpacked code,
the model and report back from the OSS output, checked. And what goes wrong on that path, each in plain words."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import onnx
import pytest

from apps.training.pai.data_path import fetch_output, output_uri, stage_sample
from apps.training.pai.oss import OssIntegrityError, OssNotFound
from apps.training.pai.request import JobSettings, create_job_body
from apps.training.pai.statuses import PaiStatus
from apps.training.pai.trainer_code import build_trainer_archive, trainer_archive, upload_trainer_code
from apps.training.trainer import save_sample
from mlab_client.contract import META_SIGNATURE

from .pai_support import poll
from .trainer_data import builtin_payload, click_sample

pytestmark = pytest.mark.slow
IMAGE = "emulator.example/mlab/python:3.11"


@pytest.fixture
def staged(pai_emulator, tmp_path):
    """The trainer's code and a run's sample on the emulator's OSS, and an inline job body for them."""
    store = pai_emulator.oss_store()
    sample, _ = click_sample(2000, seed=3)
    path = tmp_path / "sample.npz"
    save_sample(path, sample)
    code = upload_trainer_code(store)
    staged_sample = stage_sample(store, 21, path)
    settings = JobSettings(workspace_id=pai_emulator.workspace_id, image=IMAGE, max_running_seconds=600)
    body = create_job_body(
        run_id=21,
        payload=builtin_payload("binary-lr"),
        input_uri=staged_sample.uri,
        output_uri=output_uri(store, 21),
        settings=settings,
        code=code,
    )
    return pai_emulator, store, code, body


def test_an_inline_job_runs_mlabs_trainer_from_its_code_and_the_model_comes_back(staged, tmp_path):
    emulator, store, code, body = staged
    assert code.uri == store.uri(store.code_key(trainer_archive().sha256)) and not code.reused
    assert upload_trainer_code(store).reused  # once per trainer version
    client = emulator.client(backoff=0.01)
    job_id = client.create_training_job(body).job_id
    job, _ = poll(client, job_id, timeout=120)
    assert job["Status"] == PaiStatus.SUCCEED, job["ReasonMessage"]
    assert job["OutputModel"]["Uri"] == body["OutputChannels"][0]["OutputUri"]
    metrics = {m["Name"]: m["Value"] for m in job["LatestMetrics"]}
    assert 0.5 < metrics["auc"] <= 1 and job["LatestProgress"]["OverallProgress"]["Value"] == 100.0
    logs = "\n".join(client.get_training_job_logs(job_id))
    assert "CodeDir oss://" in logs and "is not pulled" in logs

    out = fetch_output(store, job["OutputModel"]["Uri"], tmp_path / "out")
    assert out.report["parity"]["max_abs_diff"] <= 1e-5 and out.report["metrics"]["auc"] == metrics["auc"]
    assert out.sha256 == hashlib.sha256(out.model_path.read_bytes()).hexdigest() == out.report["model_file"]["sha256"]
    model = onnx.load_from_string(out.model_path.read_bytes())
    assert META_SIGNATURE in {p.key for p in model.metadata_props}


def test_the_archive_is_deterministic_and_self_contained(tmp_path):
    first, second = build_trainer_archive(), build_trainer_archive()
    assert first.data == second.data and first.sha256 == second.sha256
    with tarfile.open(fileobj=io.BytesIO(first.data)) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names[:-1]) + ["requirements.txt"]
        assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" and m.mode == 0o644 for m in members)
        requirements = tar.extractfile("requirements.txt").read().decode().split()
    assert "apps/training/trainer/__main__.py" in names and "mlab_client/contract.py" in names
    assert not any("tests/" in n or n.endswith(".pyc") or "settings" in n for n in names)
    assert {r.split("==")[0] for r in requirements} >= {"numpy", "scikit-learn", "skl2onnx", "onnx", "onnxruntime"}
    assert all("==" in r for r in requirements)


def test_the_trainer_imports_nothing_outside_its_archive(tmp_path):
    """Run from the unpacked archive alone (no repository on the path): every module the trainer's entry point
    loads is found, and none is Django."""
    import subprocess
    import sys

    archive = build_trainer_archive()
    root = tmp_path / "usercode"
    with tarfile.open(fileobj=io.BytesIO(archive.data)) as tar:
        tar.extractall(root, filter="data")
    code = (
        "import sys, apps.training.trainer.__main__, apps.training.pai.hyperparameters\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('apps', 'mlab_client', 'django')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    loaded = eval(done.stdout)  # noqa: S307  (our own subprocess printed a list literal)
    assert loaded and not any(m == "django" or m.startswith("django.") for m in loaded)
    files = {m.replace(".", "/") for m in loaded}
    assert all(f + ".py" in archive.files or f + "/__init__.py" in archive.files for f in files)


def test_a_missing_model_lists_what_the_output_holds(staged, tmp_path):
    emulator, store, _, body = staged
    client = emulator.client(backoff=0.01)
    job, _ = poll(client, client.create_training_job(body).job_id, timeout=120)
    store.delete(job["OutputModel"]["Uri"] + "model.onnx")
    with pytest.raises(OssNotFound) as missing:
        fetch_output(store, job["OutputModel"]["Uri"], tmp_path / "out")
    assert (
        str(missing.value)
        == f"There is no model.onnx in the job's output {job['OutputModel']['Uri']}; it holds: report.json."
    )
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_a_model_that_is_not_the_one_reported_is_refused(staged, tmp_path):
    emulator, store, _, body = staged
    client = emulator.client(backoff=0.01)
    job, _ = poll(client, client.create_training_job(body).job_id, timeout=120)
    report = json.loads(store.read_bytes(job["OutputModel"]["Uri"] + "report.json"))
    _, key = job["OutputModel"]["Uri"].removeprefix("oss://").split("/", 1)
    store.upload_bytes(b"x" * report["model_file"]["size"], key + "model.onnx")  # same size, other bytes
    with pytest.raises(OssIntegrityError, match="sha256"):
        fetch_output(store, job["OutputModel"]["Uri"], tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # nothing half-written is left


def test_a_job_role_that_cannot_read_the_sample_fails_in_plain_words(staged):
    emulator, store, _, body = staged
    sample_uri = body["InputChannels"][0]["InputUri"]
    emulator.oss_faults.deny(f"{emulator.bucket}/{store.key('runs')}", verbs=("read",), principal="job")
    client = emulator.client(backoff=0.01)
    job, _ = poll(client, client.create_training_job(body).job_id, timeout=60)
    assert job["Status"] == PaiStatus.INITIALIZE_FAILED
    assert f"the PAI workspace role cannot read {sample_uri}" in job["ReasonMessage"]


def test_requirements_the_image_cannot_have_fail_the_job_naming_them(staged):
    emulator, _, _, body = staged
    body["PythonRequirements"] = [*body["PythonRequirements"], "numpy==0.0.1", "no-such-dist==1"]
    client = emulator.client(backoff=0.01)
    job, _ = poll(client, client.create_training_job(body).job_id, timeout=60)
    assert job["Status"] == PaiStatus.INITIALIZE_FAILED
    assert (
        "numpy==0.0.1 (this machine has" in job["ReasonMessage"]
        and "no-such-dist==1 (not installed)" in job["ReasonMessage"]
    )
