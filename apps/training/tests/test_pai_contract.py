"""Contract tests: Alibaba's own clients against the PAI emulator, and Mlab's signer against Alibaba's.

An emulator that only Mlab's client talks to proves nothing about PAI. Here Alibaba's published SDKs,
``alibabacloud-paistudio20220112`` (PAI's TrainingService) and ``alibabacloud-oss-v2`` (OSS), make every call
Mlab makes, the emulator's answers are checked against the types those SDKs declare, and Mlab's ACS3 signer
is compared byte for byte with ``alibabacloud-openapi-util`` over a corpus of requests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
import typing
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss
import pytest
from alibabacloud_openapi_util.client import Client as OpenApiUtil
from alibabacloud_paistudio20220112 import models as pai_models
from alibabacloud_paistudio20220112.client import Client as PaiStudio
from alibabacloud_tea_openapi import models as open_api_models
from Tea.request import TeaRequest

from apps.training.pai import signing
from apps.training.pai.request import JobSettings, algorithm_spec, create_job_body
from apps.training.pai.statuses import PaiStatus
from apps.training.pai.trainer_code import TrainerCode

from .pai_support import stub_trainer_command, template_payload

pytestmark = pytest.mark.slow


# -- helpers ----------------------------------------------------------------------------------------------
def _hints(model: type) -> dict[str, Any]:
    module = sys.modules[model.__module__]
    namespace = {**vars(module), "main_models": pai_models}
    return {k: v for k, v in typing.get_type_hints(model.__init__, globalns=namespace).items() if k != "return"}


def _field(hints: dict[str, Any], key: str) -> str | None:
    """The SDK attribute a JSON key fills (TrainingJobId → training_job_id, CPU → cpu, GPUType → gputype)."""
    flat = key.replace("_", "").lower()
    return next((name for name in hints if name.replace("_", "").lower() == flat), None)


def assert_declared_types(model: type, data: Any, path: str = "$") -> None:
    """Every value the emulator sent has the type the SDK's model declares for it."""
    assert isinstance(data, dict), f"{path} is {type(data).__name__}, the SDK expects an object"
    hints = _hints(model)
    for key, value in data.items():
        if key == "Emulator":
            continue  # the emulator's label; the SDK ignores it
        name = _field(hints, key)
        assert name is not None, f"{path}.{key} is not a field of {model.__name__}"
        if value is not None:
            _check(hints[name], value, f"{path}.{key}")


def _check(hint: Any, value: Any, path: str) -> None:
    origin = typing.get_origin(hint)
    if origin is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if origin in (list, typing.List):  # noqa: UP006
        assert isinstance(value, list), f"{path} should be a list"
        for i, item in enumerate(value):
            _check(typing.get_args(hint)[0], item, f"{path}[{i}]")
    elif origin in (dict, typing.Dict):  # noqa: UP006
        assert isinstance(value, dict), f"{path} should be an object"
    elif hint is bool:
        assert isinstance(value, bool), f"{path} should be a bool, not {value!r}"
    elif hint is int:
        assert isinstance(value, int) and not isinstance(value, bool), f"{path} should be an int, not {value!r}"
    elif hint is float:
        assert isinstance(value, int | float) and not isinstance(value, bool), f"{path} should be a number"
    elif hint is str:
        assert isinstance(value, str), f"{path} should be a string, not {value!r}"
    elif isinstance(hint, type) and hasattr(hint, "from_map"):
        assert_declared_types(hint, value, path)


@pytest.fixture
def emulator(pai_emulator):
    pai_emulator.trainer_command = stub_trainer_command(sleep=0.05)
    return pai_emulator


def _studio(emulator, **credentials) -> PaiStudio:
    config = open_api_models.Config(
        access_key_id=credentials.get("key", emulator.access_key_id),
        access_key_secret=credentials.get("secret", emulator.access_key_secret),
        security_token=credentials.get("token"),
        endpoint=emulator.endpoint.removeprefix("http://"),
        protocol="http",
        read_timeout=10000,
        connect_timeout=5000,
    )
    return PaiStudio(config)


def _raw(response: Any) -> dict[str, Any]:
    return response.body.to_map()


# -- PAI: Alibaba's client drives the emulator through every call Mlab makes -------------------------------
def test_paistudio_sdk_creates_gets_lists_reads_logs_and_stops(emulator, builtin_templates, tmp_path):
    store = emulator.oss_store()
    sample = store.upload_bytes(b"not really a sample", store.run_input_key(5))
    body = create_job_body(
        run_id=5,
        payload=template_payload(builtin_templates["binary-lr"]),
        input_uri=sample.uri,
        output_uri=emulator.oss_uri(store.run_output_prefix(5)),
        settings=JobSettings(workspace_id=emulator.workspace_id, algorithm_name="mlab-trainer"),
    )
    request = pai_models.CreateTrainingJobRequest().from_map(body)
    assert request.to_map() == body  # Mlab's body is exactly what the SDK's request model holds
    studio = _studio(emulator)

    created = studio.create_training_job(request)
    assert_declared_types(pai_models.CreateTrainingJobResponseBody, _raw(created))
    job_id = created.body.training_job_id

    emulator.wait(job_id, timeout=60)
    got = studio.get_training_job(job_id)
    raw = _raw(got)
    assert_declared_types(pai_models.GetTrainingJobResponseBody, raw)
    assert got.body.status == PaiStatus.SUCCEED
    assert got.body.output_model.uri == body["OutputChannels"][0]["OutputUri"]  # echoed, never rewritten
    assert got.body.output_channels[0].output_uri == body["OutputChannels"][0]["OutputUri"]
    assert got.body.scheduler.max_running_time_in_seconds == str(body["Scheduler"]["MaxRunningTimeInSeconds"])

    listed = studio.list_training_jobs(
        pai_models.ListTrainingJobsRequest(workspace_id=emulator.workspace_id, labels={"mlab-run-id": "5"})
    )
    assert_declared_types(pai_models.ListTrainingJobsResponseBody, _raw(listed))
    assert [j.training_job_id for j in listed.body.training_jobs] == [job_id] and listed.body.total_count == 1

    logs = studio.list_training_job_logs(job_id, pai_models.ListTrainingJobLogsRequest(page_size=100))
    assert_declared_types(pai_models.ListTrainingJobLogsResponseBody, _raw(logs))
    assert any("stub trainer: step 4/4" in line for line in logs.body.logs)

    stopped = studio.stop_training_job(job_id)  # stopping a finished job is not an error
    assert_declared_types(pai_models.StopTrainingJobResponseBody, _raw(stopped))


def test_paistudio_sdk_runs_an_inline_spec_and_sees_metrics_and_progress(emulator, builtin_templates, tmp_path):
    """An inline AlgorithmSpec (no AlgorithmName), CodeDir on the emulator's OSS: the job runs the spec's
    Command in the unpacked code, PAI's Environments reach it, and its metric and progress lines come back
    in LatestMetrics and LatestProgress."""
    store = emulator.oss_store()
    script = (
        "import json, os, pathlib\n"
        "print(json.dumps({'stage': 'fitting', 'percent': 40, 'message': 'half'}), flush=True)\n"
        "print(json.dumps({'metric': 'auc', 'value': 0.8125}), flush=True)\n"
        "out = pathlib.Path(os.environ['PAI_OUTPUT_MODEL'])\n"
        "(out / 'model.onnx').write_bytes(b'model')\n"
        "(out / 'env.json').write_text(json.dumps({'greeting': os.environ.get('GREETING'),"
        " 'cwd': os.getcwd()}))\n"
    )
    archive = _tar_gz({"train.py": script.encode()}, tmp_path / "code.tar.gz")
    code = store.upload_file(archive, store.key("code", "test-code.tar.gz"))
    spec = algorithm_spec(JobSettings(workspace_id="w", image="registry.example.com/py:3.11"), code=_code(store, code))
    spec["Command"] = ["python", "train.py"]
    output = emulator.oss_uri(store.run_output_prefix(6))
    body = {
        "TrainingJobName": "mlab-contract-inline",
        "WorkspaceId": emulator.workspace_id,
        "AlgorithmSpec": spec,
        "InputChannels": [{"Name": "train", "InputUri": code.uri}],
        "OutputChannels": [{"Name": "model", "OutputUri": output}],
        "Environments": {"GREETING": "hello"},
        "Scheduler": {"MaxRunningTimeInMinutes": 5},
        "Labels": [{"Key": "mlab-run-id", "Value": "6"}],
    }
    studio = _studio(emulator)
    job_id = studio.create_training_job(pai_models.CreateTrainingJobRequest().from_map(body)).body.training_job_id
    emulator.wait(job_id, timeout=60)
    got = studio.get_training_job(job_id)
    assert got.body.status == PaiStatus.SUCCEED, got.body.reason_message
    assert_declared_types(pai_models.GetTrainingJobResponseBody, _raw(got))
    assert [(m.name, m.value) for m in got.body.latest_metrics] == [("auc", 0.8125)]
    assert got.body.latest_progress.overall_progress.value == 40.0
    assert got.body.algorithm_name in ("", None) and got.body.is_temp_algo is True
    env = json.loads(store.read_bytes(output + "env.json"))
    assert env["greeting"] == "hello" and env["cwd"].endswith("/code")
    assert store.read_bytes(output + "model.onnx") == b"model"


def test_paistudio_sdk_list_filters_window_and_order(emulator, tmp_path):
    studio = _studio(emulator)
    client = emulator.client(backoff=0.01)
    sample = tmp_path / "s.csv"
    sample.write_text("a\n")
    ids = []
    for run in ("1", "2", "3"):
        body = {
            "TrainingJobName": f"mlab-run-{run}",
            "WorkspaceId": emulator.workspace_id,
            "AlgorithmName": "mlab-trainer",
            "InputChannels": [{"Name": "train", "InputUri": sample.as_uri()}],
            "OutputChannels": [{"Name": "model"}],
            "Labels": [{"Key": "mlab-run-id", "Value": run}],
        }
        ids.append(client.create_training_job(body).job_id)
    old = emulator.job(ids[0])
    old.created_at -= dt.timedelta(days=8)  # outside the default 7-day window

    def listed(**filters) -> list[str]:
        request = pai_models.ListTrainingJobsRequest(workspace_id=emulator.workspace_id, **filters)
        return [j.training_job_id for j in studio.list_training_jobs(request).body.training_jobs]

    assert listed() == [ids[2], ids[1]]  # newest first, the 8-day-old job left out
    assert listed(order="asc") == [ids[1], ids[2]]
    assert listed(training_job_id=ids[1]) == [ids[1]]
    assert listed(algorithm_name="mlab-trainer", sort_by="TrainingJobName", order="asc") == [ids[1], ids[2]]
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert listed(start_time=since) == [ids[2], ids[1], ids[0]]
    assert listed(end_time=since) == []
    assert listed(algorithm_name="someone-else") == []
    for job_id in ids:
        emulator.wait(job_id, timeout=60)


def test_paistudio_sdk_registers_an_algorithm_and_runs_it(emulator, builtin_templates, tmp_path):
    studio = _studio(emulator)
    store = emulator.oss_store()
    archive = _tar_gz({"noop.py": b"print('ok')\n"}, tmp_path / "code.tar.gz")
    code = store.upload_file(archive, store.key("code", "noop.tar.gz"))
    created = studio.create_algorithm(
        pai_models.CreateAlgorithmRequest(algorithm_name="mlab-contract", workspace_id=emulator.workspace_id)
    )
    assert_declared_types(pai_models.CreateAlgorithmResponseBody, _raw(created))
    spec = algorithm_spec(
        JobSettings(workspace_id="w", image="registry.example.com/py:3.11"),
        code=_code(store, code),
        declare_hyperparameters=True,
    )
    spec["Command"] = ["python", "noop.py"]
    version = studio.create_algorithm_version(
        created.body.algorithm_id,
        "v1.0.0",
        pai_models.CreateAlgorithmVersionRequest().from_map({"AlgorithmSpec": spec}),
    )
    assert_declared_types(pai_models.CreateAlgorithmVersionResponseBody, _raw(version))
    found = studio.list_algorithms(
        pai_models.ListAlgorithmsRequest(algorithm_name="mlab-contract", workspace_id=emulator.workspace_id)
    )
    assert_declared_types(pai_models.ListAlgorithmsResponseBody, _raw(found))
    versions = studio.list_algorithm_versions(created.body.algorithm_id, pai_models.ListAlgorithmVersionsRequest())
    assert_declared_types(pai_models.ListAlgorithmVersionsResponseBody, _raw(versions))
    assert [v.algorithm_version for v in versions.body.algorithm_versions] == ["v1.0.0"]

    payload = template_payload(builtin_templates["binary-lr"])
    settings = JobSettings(
        workspace_id=emulator.workspace_id, algorithm_name="mlab-contract", algorithm_version="v1.0.0"
    )
    body = create_job_body(
        run_id=9,
        payload=payload,
        input_uri=code.uri,
        output_uri=emulator.oss_uri(store.run_output_prefix(9)),
        settings=settings,
    )
    job_id = studio.create_training_job(pai_models.CreateTrainingJobRequest().from_map(body)).body.training_job_id
    job = emulator.wait(job_id, timeout=60)
    assert job.status == PaiStatus.SUCCEED, job.reason_message

    body["HyperParameters"].append({"Name": "notDeclared", "Value": "1"})
    with pytest.raises(Exception) as refused:
        studio.create_training_job(pai_models.CreateTrainingJobRequest().from_map(body))
    assert "notDeclared" in str(refused.value)


def test_paistudio_sdk_with_an_sts_token_and_the_signed_host(emulator):
    key, secret, token = emulator.sts_credentials
    request = pai_models.ListTrainingJobsRequest(workspace_id=emulator.workspace_id)
    assert _studio(emulator, key=key, secret=secret, token=token).list_training_jobs(request).body.total_count == 0
    with pytest.raises(Exception) as refused:
        _studio(emulator, key=key, secret=secret, token=token + "x").list_training_jobs(request)
    assert "InvalidSecurityToken" in str(refused.value) and token not in str(refused.value)
    # Signed for another host (as a request captured and replayed elsewhere would be): refused.
    url, headers = _signed_list(emulator, host="pai.cn-hangzhou.aliyuncs.com")
    import requests

    answer = requests.get(url, headers={**headers, "Host": "pai.cn-hangzhou.aliyuncs.com"}, timeout=5)
    assert (answer.status_code, answer.json()["Code"]) == (400, "InvalidHost")


def _signed_list(emulator, *, host):
    query = {"WorkspaceId": emulator.workspace_id}
    headers = signing.sign_request(
        method="GET",
        host=host,
        path="/api/v1/trainingjobs",
        query=query,
        action="ListTrainingJobs",
        version="2022-01-12",
        access_key_id=emulator.access_key_id,
        access_key_secret=emulator.access_key_secret,
    )
    return f"{emulator.endpoint}/api/v1/trainingjobs?{signing.canonical_query(query)}", headers


def _code(store, stored) -> TrainerCode:
    return TrainerCode(uri=stored.uri, sha256="", requirements=(), endpoint=store.endpoint_host)


def _tar_gz(files: dict[str, bytes], path: Path) -> Path:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


# -- OSS: Alibaba's SDK against the emulator's OSS ----------------------------------------------------------
def _oss_client(emulator, *, secret=None, token=None, key=None) -> oss.Client:
    config = oss.config.load_default()
    config.region = emulator.region
    config.endpoint = emulator.oss_endpoint
    config.credentials_provider = oss.credentials.StaticCredentialsProvider(
        key or emulator.access_key_id, secret or emulator.access_key_secret, token
    )
    config.retry_max_attempts = 1
    return oss.Client(config)


def test_oss_sdk_puts_gets_heads_lists_and_deletes(emulator):
    client = _oss_client(emulator)
    bucket = emulator.bucket
    keys = ["contract/a.txt", "contract/é x+y;=&?.txt", "contract/sub/b.bin", "other/c"]
    for number, key in enumerate(keys):
        body = f"body {number} 中文".encode()
        put = client.put_object(oss.PutObjectRequest(bucket=bucket, key=key, body=body, metadata={"n": str(number)}))
        assert put.status_code == 200 and put.etag and put.hash_crc64  # the SDK checked the CRC64 itself
    got = client.get_object(oss.GetObjectRequest(bucket=bucket, key=keys[1]))
    assert got.body.read() == "body 1 中文".encode() and got.metadata == {"n": "1"}
    head = client.head_object(oss.HeadObjectRequest(bucket=bucket, key=keys[2]))
    assert head.content_length == len("body 2 中文".encode()) and head.etag == got.etag.replace(got.etag, head.etag)

    pages = client.list_objects_v2_paginator(limit=2).iter_page(
        oss.ListObjectsV2Request(bucket=bucket, prefix="contract/")
    )
    listed = [item.key for page in pages for item in page.contents or []]
    assert listed == sorted(keys[:3])  # keys decoded from encoding-type=url, pages of two
    folders = client.list_objects_v2(oss.ListObjectsV2Request(bucket=bucket, prefix="contract/", delimiter="/"))
    assert [p.prefix for p in folders.common_prefixes] == ["contract/sub/"]

    client.delete_object(oss.DeleteObjectRequest(bucket=bucket, key=keys[0]))
    with pytest.raises(oss.exceptions.OperationError) as missing:
        client.get_object(oss.GetObjectRequest(bucket=bucket, key=keys[0]))
    error = missing.value.unwrap()
    assert (error.status_code, error.code, error.ec) == (404, "NoSuchKey", "0026-00000001")
    assert error.request_id


def test_oss_sdk_multipart_upload_and_abort(emulator, tmp_path):
    client = _oss_client(emulator)
    bucket = emulator.bucket
    data = bytes(range(256)) * 4096 * 3  # 3 MiB
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    uploaded = client.uploader(part_size=512 * 1024).upload_file(
        oss.PutObjectRequest(bucket=bucket, key="contract/multi.bin"), filepath=str(path)
    )
    assert uploaded.etag.endswith('-6"')
    assert client.get_object(oss.GetObjectRequest(bucket=bucket, key="contract/multi.bin")).body.read() == data

    started = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=bucket, key="contract/gone"))
    client.upload_part(
        oss.UploadPartRequest(bucket=bucket, key="contract/gone", upload_id=started.upload_id, part_number=1, body=b"x")
    )
    listed = client.list_multipart_uploads(oss.ListMultipartUploadsRequest(bucket=bucket, prefix="contract/"))
    assert [u.upload_id for u in listed.uploads] == [started.upload_id]
    client.abort_multipart_upload(
        oss.AbortMultipartUploadRequest(bucket=bucket, key="contract/gone", upload_id=started.upload_id)
    )
    assert not client.list_multipart_uploads(oss.ListMultipartUploadsRequest(bucket=bucket)).uploads
    assert not client.is_object_exist(bucket, "contract/gone")  # an aborted upload never becomes an object


def test_oss_checks_the_v4_signature_sts_token_and_host(emulator):
    bucket = emulator.bucket
    with pytest.raises(oss.exceptions.OperationError) as wrong:
        _oss_client(emulator, secret="guess").put_object(oss.PutObjectRequest(bucket=bucket, key="k", body=b"x"))
    assert wrong.value.unwrap().code == "SignatureDoesNotMatch"
    key, secret, token = emulator.sts_credentials
    sts = _oss_client(emulator, key=key, secret=secret, token=token)
    assert sts.put_object(oss.PutObjectRequest(bucket=bucket, key="sts", body=b"x")).status_code == 200
    with pytest.raises(oss.exceptions.OperationError) as bad_token:
        _oss_client(emulator, key=key, secret=secret, token="forged").get_object(
            oss.GetObjectRequest(bucket=bucket, key="sts")
        )
    assert bad_token.value.unwrap().code == "InvalidAccessKeyId"

    # Mlab's store signs the Host: the same signed request sent with another Host fails the signature.
    store = emulator.oss_store()
    seen = {}
    original = store.client._client._options.http_client.send

    def send(request, **kwargs):
        seen.update(request.headers)
        return original(request, **kwargs)

    store.client._client._options.http_client.send = send
    store.upload_bytes(b"hosted", "signed-host")
    assert "AdditionalHeaders=host" in seen["Authorization"]
    import requests

    url = f"{emulator.oss_endpoint}/{bucket}/signed-host"
    replay = requests.put(url, data=b"other", headers={**seen, "host": "evil.example.com:80"}, timeout=5)
    assert replay.status_code in (400, 403) and b"<Code>" in replay.content


# -- Mlab's ACS3 signer, byte for byte with alibabacloud-openapi-util ---------------------------------------
CORPUS = [
    ("GET", "/api/v1/trainingjobs", {"WorkspaceId": "123", "PageNumber": "1"}, b"", None, ""),
    (
        "GET",
        "/api/v1/trainingjobs",
        {"Labels": '{"mlab-run-id":"42 *~/"}', "X": "a+b=c&d;e,f:g@h$i!j'k(l)m"},
        b"",
        None,
        "",
    ),
    ("GET", "/api/v1/trainingjobs", {"TrainingJobName": "中文 名字", "Emoji": "🚀", "Empty": ""}, b"", None, ""),
    (
        "POST",
        "/api/v1/trainingjobs",
        {},
        '{"TrainingJobName":"mlab-run-7","说明":"训练 é"}'.encode(),
        "application/json",
        "",
    ),
    (
        "POST",
        "/api/v1/trainingjobs",
        {},
        b'{"a":"\\u00e9 \xe2\x82\xac"}',
        "application/json",
        "sts-token/with+reserved=chars",
    ),
    ("PUT", "/api/v1/trainingjobs/train abc~x/stop", {}, b"", None, ""),
    (
        "GET",
        "/api/v1/trainingjobs/traina1b2/logs",
        {"PageSize": "500", "StartTime": "2024-03-01T08:00:00Z"},
        b"",
        None,
        "tok",
    ),
    (
        "POST",
        "/api/v1/algorithms/algo-1/versions/v1.0.0",
        {},
        b"AlgorithmSpec=%7B%22a%22%3A1%7D",
        "application/x-www-form-urlencoded",
        "",
    ),
]


@pytest.mark.parametrize(("method", "path", "query", "body", "content_type", "token"), CORPUS)
def test_mlabs_signer_matches_openapi_util_byte_for_byte(method, path, query, body, content_type, token):
    headers = signing.sign_request(
        method=method,
        host="pai.cn-hangzhou.aliyuncs.com",
        path=path,
        query=query,
        body=body,
        action="CreateTrainingJob",
        version="2022-01-12",
        access_key_id="LTAI-contract",
        access_key_secret="contract/secret+value=",
        content_type=content_type,
        security_token=token,
        date=dt.datetime(2024, 3, 1, 8, 0, 0, tzinfo=dt.UTC),
        nonce="3156853299f313e23d1673dc12e1703d",
    )
    request = TeaRequest()
    request.method = method
    request.pathname = OpenApiUtil.get_encode_path(path)
    request.query = dict(query)
    request.headers = {name: value for name, value in headers.items() if name != "Authorization"}
    theirs = OpenApiUtil.get_authorization(
        request, "ACS3-HMAC-SHA256", hashlib.sha256(body).hexdigest(), "LTAI-contract", "contract/secret+value="
    )
    assert headers["Authorization"] == theirs
    if token:
        assert "x-acs-security-token" in headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
