"""Credentials and faults on the PAI data path, over real HTTP against the emulator: STS tokens and the
default chain, interrupted and abandoned uploads, OSS refusals in plain words, and secrets that never show."""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from apps.training.pai.client import PaiClient
from apps.training.pai.credentials import (
    Credentials,
    CredentialsUnavailable,
    DefaultChainCredentials,
    StaticCredentials,
    credentials_from_settings,
)
from apps.training.pai.errors import PaiConfigurationError
from apps.training.pai.oss import OssAccessDenied, OssError

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


# -- credentials --------------------------------------------------------------------------------------------
def test_settings_choose_the_credentials_source():
    keys = {"MLAB_PAI_ACCESS_KEY_ID": "LTAI-x", "MLAB_PAI_ACCESS_KEY_SECRET": "s3cr3t-value"}
    plain = credentials_from_settings(SimpleNamespace(**keys))
    assert plain.get().token() == "" and plain.describe() == "AccessKey LTAI-x"
    sts = credentials_from_settings(SimpleNamespace(**keys, MLAB_PAI_SECURITY_TOKEN="tok-value"))
    assert sts.get().token() == "tok-value" and sts.describe() == "STS token LTAI-x"
    with pytest.raises(PaiConfigurationError, match="MLAB_PAI_SECURITY_TOKEN"):
        credentials_from_settings(SimpleNamespace(**keys, MLAB_PAI_CREDENTIALS="sts"))
    with pytest.raises(PaiConfigurationError, match="MLAB_PAI_ACCESS_KEY_SECRET"):
        credentials_from_settings(SimpleNamespace(MLAB_PAI_ACCESS_KEY_ID="LTAI-x"))
    with pytest.raises(PaiConfigurationError, match="default-chain"):
        credentials_from_settings(SimpleNamespace(MLAB_PAI_CREDENTIALS="magic"))
    assert isinstance(
        credentials_from_settings(SimpleNamespace(MLAB_PAI_CREDENTIALS="default-chain")), DefaultChainCredentials
    )


def test_a_pai_client_signs_with_an_sts_token(pai_emulator):
    key, secret, token = pai_emulator.sts_credentials
    client = PaiClient(
        pai_emulator.endpoint, key, secret, pai_emulator.workspace_id, security_token=token, backoff=0.01
    )
    assert client.list_training_jobs() == []
    store = pai_emulator.oss_store(credentials=StaticCredentials(key, secret, token))
    assert all(step.ok for step in store.probe())
    forged = PaiClient(
        pai_emulator.endpoint, key, secret, pai_emulator.workspace_id, security_token="forged", max_retries=0
    )
    with pytest.raises(Exception, match="security token") as refused:
        forged.list_training_jobs()
    assert token not in str(refused.value) and secret not in str(refused.value)


_CHAIN_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from types import SimpleNamespace
    from apps.training.pai.client import PaiClient
    from apps.training.pai.credentials import credentials_from_settings
    from apps.training.pai.oss import OssSettings, OssStore
    endpoint, workspace, oss_endpoint, bucket, region = sys.argv[1:6]
    try:
        provider = credentials_from_settings(SimpleNamespace(MLAB_PAI_CREDENTIALS="default-chain"))
        client = PaiClient(endpoint, "", "", workspace, credentials=provider, max_retries=0)
        jobs = client.list_training_jobs()
        store = OssStore(OssSettings(bucket=bucket, region=region, endpoint=oss_endpoint), provider)
        print(json.dumps({"jobs": len(jobs), "probe": [s.ok for s in store.probe()], "who": provider.get().access_key_id}))
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
    """
)


def _chain(emulator, tmp_path, **env) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "MLAB_PAI_", "DJANGO"))}
    # HOME elsewhere (no credentials file of the machine's), and never the ECS metadata server off this machine.
    clean.update(HOME=str(tmp_path), ALIBABA_CLOUD_ECS_METADATA_DISABLED="true", **env)
    done = subprocess.run(
        [sys.executable, "-c", _CHAIN_SCRIPT, emulator.endpoint, emulator.workspace_id, emulator.oss_endpoint,
         emulator.bucket, emulator.region],
        cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_default_chain_finds_environment_variables_and_the_credentials_file(pai_emulator, tmp_path):
    key, secret, token = pai_emulator.sts_credentials
    from_env = _chain(
        pai_emulator,
        tmp_path,
        ALIBABA_CLOUD_ACCESS_KEY_ID=key,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET=secret,
        ALIBABA_CLOUD_SECURITY_TOKEN=token,
    )
    assert from_env == {"jobs": 0, "probe": [True, True, True], "who": key}

    ini = tmp_path / "credentials.ini"
    ini.write_text(
        "[default]\nenable = true\ntype = access_key\n"
        f"access_key_id = {pai_emulator.access_key_id}\naccess_key_secret = {pai_emulator.access_key_secret}\n"
    )
    from_file = _chain(pai_emulator, tmp_path, ALIBABA_CLOUD_CREDENTIALS_FILE=str(ini))
    assert from_file["who"] == pai_emulator.access_key_id and from_file["probe"] == [True, True, True]

    nothing = _chain(pai_emulator, tmp_path)
    assert nothing["error"].startswith("CredentialsUnavailable: The alibabacloud-credentials default chain found no")
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in nothing["error"]


def test_the_default_chain_failure_is_plain_and_secret_free():
    class Broken:
        def get_credential(self):
            raise RuntimeError("line 3 of credentials.ini: access_key_secret = hunter2")

    with pytest.raises(CredentialsUnavailable) as failed:
        DefaultChainCredentials(Broken()).get()
    assert "hunter2" not in str(failed.value) and "RuntimeError" in str(failed.value)


# -- uploads that break ---------------------------------------------------------------------------------------
def test_an_interrupted_upload_is_retried_and_never_leaves_half_an_object(pai_emulator, tmp_path):
    data = os.urandom(3 * 1024 * 1024)
    path = tmp_path / "sample.npz"
    path.write_bytes(data)
    single = pai_emulator.oss_store(backoff=0.01)
    pai_emulator.oss_faults.cut_next(operation="PutObject", after_bytes=1024 * 1024)
    stored = single.upload_file(path, single.run_input_key(1))
    assert single.read_bytes(stored.uri, max_bytes=len(data)) == data

    once = pai_emulator.oss_store(backoff=0.01, max_retries=0)
    pai_emulator.oss_faults.cut_next(operation="PutObject", after_bytes=1024 * 1024)
    with pytest.raises(OssError, match="gave up after 1 attempts"):
        once.upload_file(path, once.run_input_key(2))
    assert once.head(once.run_input_key(2)) is None  # the cut body never became an object

    multi = pai_emulator.oss_store(backoff=0.01, multipart_threshold=1024 * 1024, part_size=512 * 1024)
    pai_emulator.oss_faults.cut_next(operation="UploadPart", after_bytes=100_000, count=2)
    stored = multi.upload_file(path, multi.run_input_key(3))
    assert multi.read_bytes(stored.uri, max_bytes=len(data)) == data and stored.etag.endswith('-6"')


def test_a_multipart_upload_that_fails_is_aborted(pai_emulator, tmp_path):
    path = tmp_path / "sample.npz"
    path.write_bytes(os.urandom(2 * 1024 * 1024))
    store = pai_emulator.oss_store(backoff=0.01, max_retries=2, multipart_threshold=1024 * 1024, part_size=512 * 1024)
    pai_emulator.oss_faults.fail_next(1000, status=503, operation="UploadPart")
    with pytest.raises(OssError, match=r"part 1\).*gave up after 3 attempts"):
        store.upload_file(path, store.run_input_key(4))
    pai_emulator.oss_faults.clear()
    assert store.incomplete_uploads() == [] and store.head(store.run_input_key(4)) is None


_ABANDON_SCRIPT = textwrap.dedent(
    """
    import sys
    from apps.training.pai.credentials import StaticCredentials
    from apps.training.pai.oss import OssSettings, OssStore
    endpoint, bucket, region, key, secret, path = sys.argv[1:7]
    settings = OssSettings(bucket=bucket, region=region, endpoint=endpoint, multipart_threshold=1 << 20,
                           part_size=256 << 10, max_retries=1000, backoff=0.2, max_backoff=0.2)
    store = OssStore(settings, StaticCredentials(key, secret))
    print("uploading", flush=True)
    store.upload_file(path, store.run_input_key(5))
    """
)


def test_an_upload_abandoned_by_an_interrupted_process_is_aborted(pai_emulator, tmp_path):
    """A worker interrupted (SIGINT) in the middle of a multipart upload aborts it on its way out."""
    path = tmp_path / "sample.npz"
    path.write_bytes(os.urandom(2 * 1024 * 1024))
    pai_emulator.oss_faults.fail_next(10_000, status=503, operation="UploadPart")  # parts keep failing
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO")}
    process = subprocess.Popen(
        [sys.executable, "-c", _ABANDON_SCRIPT, pai_emulator.oss_endpoint, pai_emulator.bucket, pai_emulator.region,
         pai_emulator.access_key_id, pai_emulator.access_key_secret, str(path)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not pai_emulator.oss_state.uploads(pai_emulator.bucket):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        time.sleep(0.3)  # retrying its first part
        pai_emulator.oss_faults.clear()
        pai_emulator.oss_faults.fail_next(10_000, status=503, operation="UploadPart")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert "KeyboardInterrupt" in err
    assert pai_emulator.oss_state.uploads(pai_emulator.bucket) == []  # aborted: its parts are gone
    assert pai_emulator.oss_state.keys(pai_emulator.bucket) == []


# -- refusals and secrets -----------------------------------------------------------------------------------
def test_an_oss_refusal_names_the_location_and_the_permission(pai_emulator, tmp_path):
    store = pai_emulator.oss_store(backoff=0.01)
    stored = store.upload_bytes(b"model", store.run_output_prefix(7) + "model.onnx")
    pai_emulator.oss_faults.deny(f"{pai_emulator.bucket}/mlab/runs/7/", verbs=("read", "write"))
    with pytest.raises(OssAccessDenied) as denied:
        store.download(stored.uri, tmp_path / "model.onnx")
    assert str(denied.value) == (
        f"Mlab's credentials (AccessKey {pai_emulator.access_key_id}) cannot read {stored.uri}: OSS answered 403 "
        f"AccessDenied. Grant oss:GetObject on acs:oss:*:*:{pai_emulator.bucket}/mlab/*."
    )
    with pytest.raises(OssAccessDenied, match=r"cannot write oss://.*/runs/7/input/sample.npz.*oss:PutObject"):
        store.upload_bytes(b"x", store.run_input_key(7))
    assert not (tmp_path / "model.onnx").exists()
    # The same refusal met by the job's role (reading its input) fails the job with PAI's words for it.
    client = pai_emulator.client(backoff=0.01)
    pai_emulator.oss_faults.deny(f"{pai_emulator.bucket}/mlab/runs/8/", principal="job")
    sample = store.upload_bytes(b"s", store.run_input_key(8))
    body = {
        "TrainingJobName": "mlab-run-8",
        "WorkspaceId": pai_emulator.workspace_id,
        "AlgorithmName": "mlab-trainer",
        "InputChannels": [{"Name": "train", "InputUri": sample.uri}],
        "OutputChannels": [{"Name": "model", "OutputUri": store.uri(store.run_output_prefix(8))}],
        "Labels": [{"Key": "mlab-run-id", "Value": "8"}],
    }
    job = pai_emulator.wait(client.create_training_job(body).job_id, timeout=60)
    assert job.status == "InitializeFailed"
    assert f"the PAI workspace role cannot read {sample.uri}" in job.reason_message


def test_secrets_never_appear_in_logs_errors_reprs_or_the_emulators_log(pai_emulator, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    key, secret, token = pai_emulator.sts_credentials
    secrets_ = {secret, token, pai_emulator.access_key_secret}
    seen: list[str] = []
    client = PaiClient(
        pai_emulator.endpoint, key, secret, pai_emulator.workspace_id, security_token=token, backoff=0.01
    )
    store = pai_emulator.oss_store(credentials=StaticCredentials(key, secret, token), backoff=0.01, max_retries=1)
    seen += [
        repr(client),
        repr(store),
        repr(client.credentials),
        str(client.credentials.get()),
        repr(store.credentials),
    ]
    client.list_training_jobs()
    store.probe()
    for wrong in (
        lambda: PaiClient(
            pai_emulator.endpoint, key, secret + "x", pai_emulator.workspace_id, security_token=token, max_retries=0
        ).list_training_jobs(),
        lambda: pai_emulator.oss_store(
            credentials=StaticCredentials(key, secret + "x", token), max_retries=0
        ).upload_bytes(b"x", "k"),
        lambda: pai_emulator.oss_store(credentials=StaticCredentials(key, secret, token + "x"), max_retries=0).head(
            "k"
        ),
    ):
        with pytest.raises(Exception) as failed:
            wrong()
        seen += [str(failed.value), repr(failed.value)]
    pai_emulator.oss_faults.deny(pai_emulator.bucket, verbs=("read",))
    with pytest.raises(OssAccessDenied) as denied:
        store.download(store.uri("mlab/x"), tmp_path / "x")
    seen += [str(denied.value)]
    with pytest.raises(TypeError):
        pickle.dumps(Credentials(key, secret, token))
    seen += [r.getMessage() for r in caplog.records] + [caplog.text]
    emulator_log = [r.getMessage() for r in caplog.records if r.name.startswith("apps.training.pai.emulator")]
    assert emulator_log  # the emulator did log, and what it logged is in what is checked
    assert all(s not in text for s in secrets_ for text in seen), "a secret leaked"
