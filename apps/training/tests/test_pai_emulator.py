"""The PAI emulator itself: signature checks, PAI's error bodies, the job's files, its control API, its limits,
and the management command."""

from __future__ import annotations

import http.client
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.core.management import CommandError, call_command

from apps.training.pai import signing
from apps.training.pai.client import API_VERSION, PaiClient, PaiRefused, PaiUnavailable
from apps.training.pai.emulator import PaiEmulator, default_trainer_command
from apps.training.pai.request import RUN_LABEL
from apps.training.pai.statuses import PaiStatus

from .pai_support import poll, stub_trainer_command

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def emulator(pai_emulator):
    pai_emulator.trainer_command = stub_trainer_command(sleep=0.05)
    return pai_emulator


def _body(emulator, input_uri, run_id="1", **overrides):
    return {
        "TrainingJobName": f"mlab-run-{run_id}",
        "WorkspaceId": emulator.workspace_id,
        "AlgorithmName": "mlab-trainer",
        "HyperParameters": [{"Name": "treeCount", "Value": "60"}, {"Name": "sample.table", "Value": "impressions"}],
        "InputChannels": [{"Name": "train", "InputUri": input_uri}],
        "OutputChannels": [{"Name": "model", "OutputUri": f"oss://{emulator.bucket}/out/{run_id}/"}],
        "Labels": [{"Key": RUN_LABEL, "Value": run_id}],
        **overrides,
    }


def _signed_get(emulator, path, *, action, query=None, secret=None):
    host = emulator.endpoint.removeprefix("http://")
    headers = signing.sign_request(
        method="GET",
        host=host,
        path=path,
        query=query or {},
        action=action,
        version=API_VERSION,
        access_key_id=emulator.access_key_id,
        access_key_secret=secret or emulator.access_key_secret,
    )
    url = emulator.endpoint + path + ("?" + signing.canonical_query(query) if query else "")
    return url, headers


def test_an_unsigned_request_gets_pais_error_body_and_the_emulator_label(emulator):
    response = requests.get(f"{emulator.endpoint}/api/v1/trainingjobs", timeout=5)
    assert response.status_code == 401
    body = response.json()
    assert body["Code"] == "IncompleteSignature"
    assert {"RequestId", "HostId", "Code", "Message", "Recommend"} <= set(body)
    assert body["Emulator"] == "Mlab PAI emulator" and body["RequestId"].startswith("EMULATOR-")
    assert "emulator" in response.headers["Server"].lower() and "not PAI" in response.headers["Server"]
    assert response.headers["X-Mlab-Emulator"] == "true"


def test_a_wrong_secret_a_replay_and_a_mismatched_action_are_refused(emulator):
    url, headers = _signed_get(emulator, "/api/v1/trainingjobs", action="ListTrainingJobs", secret="guess")
    refused = requests.get(url, headers=headers, timeout=5)
    assert (refused.status_code, refused.json()["Code"]) == (403, "SignatureDoesNotMatch")

    url, headers = _signed_get(emulator, "/api/v1/trainingjobs", action="ListTrainingJobs")
    assert requests.get(url, headers=headers, timeout=5).status_code == 200
    replay = requests.get(url, headers=headers, timeout=5)
    assert (replay.status_code, replay.json()["Code"]) == (403, "SignatureNonceUsed")

    url, headers = _signed_get(emulator, "/api/v1/trainingjobs", action="StopTrainingJob")
    wrong = requests.get(url, headers=headers, timeout=5)
    assert (wrong.status_code, wrong.json()["Code"]) == (400, "InvalidAction")

    url, headers = _signed_get(emulator, "/api/v1/nothing-here", action="ListTrainingJobs")
    assert requests.get(url, headers=headers, timeout=5).status_code == 404


def test_bad_bodies_name_the_field(emulator, tmp_path):
    client = emulator.client(backoff=0.01)
    sample = tmp_path / "s.csv"
    sample.write_text("x\n1\n")
    cases = [
        ({"InputChannels": [{"Name": "train"}]}, "InputChannels[0].InputUri"),
        ({"Scheduler": {"MaxRunningTimeInSeconds": -5}}, "MaxRunningTimeInSeconds"),
        ({"HyperParameters": [{"Name": "maxIter", "Value": 100}]}, "HyperParameters[0].Value"),
        ({"AlgorithmName": ""}, "AlgorithmName"),
        ({"OutputChannels": [{"Name": "../escape"}]}, "OutputChannels: channel name '../escape'"),
        ({"InputChannels": [{"Name": "train", "InputUri": "file:///a"}] * 2}, "InputChannels: a channel name appears"),
    ]
    for overrides, field in cases:
        with pytest.raises(PaiRefused) as refused:
            client.create_training_job(_body(emulator, sample.as_uri(), **overrides))
        assert refused.value.status == 400 and field in refused.value.message
    assert emulator.jobs() == []


def test_a_job_gets_pais_container_layout(emulator, tmp_path):
    sample = tmp_path / "sample.csv"
    sample.write_text("age,clicked\n1,0\n")
    client = emulator.client(backoff=0.01)
    job_id = client.create_training_job(_body(emulator, sample.as_uri())).job_id
    job, _ = poll(client, job_id)
    assert job["Status"] == PaiStatus.SUCCEED
    workdir = emulator.job(job_id).workdir
    assert json.loads((workdir / "input/config/hyperparameters.json").read_text()) == {
        "treeCount": "60",
        "sample.table": "impressions",
    }
    assert (workdir / "input/data/train/sample.csv").read_text() == "age,clicked\n1,0\n"
    assert (workdir / "output/model/model.onnx").is_file()
    assert "stub trainer: step 4/4" in (workdir / "job.log").read_text()


def test_an_http_input_and_the_output_listing(emulator, tmp_path):
    """Job B reads job A's model over http from the emulator itself, the way a job reads any http input."""
    sample = tmp_path / "sample.csv"
    sample.write_text("a\n1\n")
    client = emulator.client(backoff=0.01)
    # A channel sent without an OutputUri is served by the emulator over http.
    no_uri = {"OutputChannels": [{"Name": "model"}]}
    first, _ = poll(client, client.create_training_job(_body(emulator, sample.as_uri(), "1", **no_uri)).job_id)
    assert first["OutputModel"]["Uri"].startswith(emulator.endpoint + "/outputs/")
    listing = requests.get(first["OutputModel"]["Uri"], timeout=5).json()
    assert listing["Files"] == ["model.onnx", "report.json"]

    model_uri = first["OutputModel"]["Uri"] + "model.onnx"
    second, _ = poll(client, client.create_training_job(_body(emulator, model_uri, run_id="2")).job_id)
    assert second["Status"] == PaiStatus.SUCCEED
    fetched = emulator.job(second["TrainingJobId"]).workdir / "input/data/train/model.onnx"
    assert (
        fetched.read_bytes() == (emulator.job(first["TrainingJobId"]).workdir / "output/model/model.onnx").read_bytes()
    )


def test_the_control_api_sets_faults_from_another_process(emulator):
    faults_url = f"{emulator.endpoint}/_emulator/faults"
    spec = {"fail_next": {"count": 2, "status": 502, "action": "ListTrainingJobs"}, "create_failed": {"reason": "x"}}
    answer = requests.post(faults_url, json=spec, timeout=5)
    assert answer.status_code == 200
    assert answer.json()["Faults"]["fail_next"] == [{"count": 2, "status": 502, "action": "ListTrainingJobs"}]
    with pytest.raises(PaiUnavailable, match="502"):
        emulator.client(max_retries=1, backoff=0.01).list_training_jobs()
    assert requests.delete(faults_url, timeout=5).json()["Faults"]["create_failed"] == []
    bad = requests.post(faults_url, json={"fail_next": {"bogus": 1}}, timeout=5)
    assert (bad.status_code, bad.json()["Code"]) == (400, "InvalidParameter")
    assert requests.post(faults_url, json={"nonsense": {}}, timeout=5).status_code == 400


def test_a_job_that_runs_past_its_limit_fails(emulator, tmp_path):
    emulator.trainer_command = stub_trainer_command(sleep=30)
    sample = tmp_path / "s.csv"
    sample.write_text("a\n")
    client = emulator.client(backoff=0.01)
    body = _body(emulator, sample.as_uri(), Scheduler={"MaxRunningTimeInSeconds": 1})
    job, _ = poll(client, client.create_training_job(body).job_id)
    assert (job["Status"], job["ReasonCode"]) == (PaiStatus.FAILED, "JobTimeout")


def test_the_time_limit_is_the_tighter_of_minutes_and_seconds():
    from apps.training.pai.emulator.jobs import time_limit

    assert time_limit({}) == 0
    assert time_limit({"Scheduler": {"MaxRunningTimeInMinutes": 2}}) == 120
    assert time_limit({"Scheduler": {"MaxRunningTimeInMinutes": 2, "MaxRunningTimeInSeconds": 30}}) == 30
    assert time_limit({"Scheduler": {"MaxRunningTimeInMinutes": 1, "MaxRunningTimeInSeconds": 300}}) == 60


def test_stopping_the_emulator_stops_its_jobs(tmp_path):
    sample = tmp_path / "s.csv"
    sample.write_text("a\n")
    emulator = PaiEmulator(work_dir=tmp_path / "emu", trainer_command=stub_trainer_command(sleep=60), step_delay=0.01)
    with emulator:
        client = emulator.client(backoff=0.01)
        job_id = client.create_training_job(_body(emulator, sample.as_uri())).job_id
        poll(client, job_id, until=lambda s: s == PaiStatus.RUNNING)
        process = emulator.job(job_id).process
    assert process.poll() is not None
    assert emulator.job(job_id).status == PaiStatus.TERMINATED


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_management_command_serves_until_stopped(tmp_path):
    sample = tmp_path / "s.csv"
    sample.write_text("a\n")
    port, secret = _free_port(), "command-test-secret-value"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLAB_PAI_")}
    command = [
        sys.executable,
        "manage.py",
        "pai_emulator",
        "--port",
        str(port),
        "--access-key-id",
        "cmd-key",
        "--access-key-secret",
        secret,
        "--workspace-id",
        "cmd-ws",
        "--work-dir",
        str(tmp_path / "work"),
        "--step-delay",
        "0.01",
        "--trainer-command",
        shlex.join(stub_trainer_command(sleep=0.01)),
    ]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/_emulator/faults", timeout=1)
                break
            except requests.ConnectionError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(server.communicate()) from None
                time.sleep(0.1)
        client = PaiClient(f"http://127.0.0.1:{port}", "cmd-key", secret, "cmd-ws", backoff=0.01)
        job, _ = poll(client, client.create_training_job(_body_for_ws("cmd-ws", sample)).job_id)
        assert job["Status"] == PaiStatus.SUCCEED
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "not Alibaba Cloud PAI" in out and "Mlab PAI emulator stopped." in out
    assert secret not in out and secret not in err


def _body_for_ws(workspace, sample):
    return {
        "TrainingJobName": "mlab-run-cmd",
        "WorkspaceId": workspace,
        "AlgorithmName": "mlab-trainer",
        "InputChannels": [{"Name": "train", "InputUri": sample.as_uri()}],
        "OutputChannels": [{"Name": "model"}],
        "Labels": [{"Key": RUN_LABEL, "Value": "cmd"}],
    }


def test_the_management_command_needs_keys(settings):
    settings.MLAB_PAI_ACCESS_KEY_ID = ""
    settings.MLAB_PAI_ACCESS_KEY_SECRET = ""
    with pytest.raises(CommandError, match="MLAB_PAI_ACCESS_KEY_SECRET"):
        call_command("pai_emulator", "--port", "0")


def test_the_default_command_runs_mlabs_trainer_as_a_module_from_the_job_directory(emulator, tmp_path):
    """The default command is ``python -m apps.training.trainer --hyperparameters … --input … --output …``,
    run from the job's directory; the repository is importable there, so a module of it runs. The stub
    trainer stands in for apps.training.trainer, in the same module form."""
    assert default_trainer_command() == [
        sys.executable,
        "-m",
        "apps.training.trainer",
        "--hyperparameters",
        "{hyperparameters}",
        "--input",
        "{input}",
        "--output",
        "{output}",
    ]
    module_form = default_trainer_command()
    module_form[2] = "apps.training.tests.pai_stub_trainer"
    emulator.trainer_command = [*module_form, "--sleep", "0.01"]
    sample = tmp_path / "s.csv"
    sample.write_text("a\n1\n")
    client = emulator.client(backoff=0.01)
    job, _ = poll(client, client.create_training_job(_body(emulator, sample.as_uri())).job_id)
    assert job["Status"] == PaiStatus.SUCCEED, job["ReasonMessage"]
    report = json.loads((emulator.job(job["TrainingJobId"]).workdir / "output/model/report.json").read_text())
    assert report["cwd"] == str(emulator.job(job["TrainingJobId"]).workdir)


def test_output_paths_cannot_leave_the_output_channel(emulator, tmp_path):
    sample = tmp_path / "s.csv"
    sample.write_text("a\n1\n")
    client = emulator.client(backoff=0.01)
    job_id = client.create_training_job(_body(emulator, sample.as_uri())).job_id
    poll(client, job_id)
    host, port = emulator.endpoint.removeprefix("http://").split(":")
    for path in (
        f"/outputs/{job_id}/model/model.onnx",
        f"/outputs/{job_id}/model/../../input/config/hyperparameters.json",
        f"/outputs/{job_id}/model/..%2F..%2Finput%2Fconfig%2Fhyperparameters.json",
        f"/outputs/{job_id}/..%2Finput/config/hyperparameters.json",
        "/outputs/trainnosuchjob00/model/model.onnx",
    ):
        connection = http.client.HTTPConnection(host, int(port), timeout=5)  # sends the path as written
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        if path.endswith("/model/model.onnx") and "nosuch" not in path:
            assert response.status == 200 and body.startswith(b"STUB-ONNX:")
        else:
            assert response.status == 404, path
            assert json.loads(body)["Code"] == "NoSuchKey"
