"""The CreateTrainingJob body: golden files per built-in template, compute resources, labels."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from apps.training.pai.hyperparameters import from_hyperparameters
from apps.training.pai.request import (
    RUN_LABEL,
    JobSettings,
    algorithm_spec,
    compute_resource,
    create_job_body,
    ecs_spec_for,
    run_label,
)
from apps.training.pai.trainer_code import TrainerCode

from .pai_support import BUILTIN_SLUGS, template_payload

GOLDEN = Path(__file__).with_name("golden")
IMAGE = "registry.example.com/mlab/python:3.11"
SETTINGS = JobSettings(workspace_id="86400", image=IMAGE)
# Fixed here (not the live archive) so that a new trainer version or pin does not rewrite the goldens.
CODE = TrainerCode(
    uri="oss://mlab-data/mlab/code/mlab-trainer-" + "ab" * 32 + ".tar.gz",
    sha256="ab" * 32,
    requirements=("numpy==2.4.6", "scikit-learn==1.9.1"),
    endpoint="oss-cn-hangzhou-internal.aliyuncs.com",
)
# AlgorithmSpec's fields, as the SDK's AlgorithmSpec.to_map names them.
SPEC_FIELDS = {
    "CodeDir",
    "Command",
    "ComputeResource",
    "Customization",
    "HyperParameters",
    "Image",
    "InputChannels",
    "JobType",
    "MetricDefinitions",
    "OutputChannels",
    "ProgressDefinitions",
    "ResourceRequirements",
    "SupportedInstanceTypes",
    "SupportsDistributedTraining",
}
# PAI's CreateTrainingJob request fields (paistudio 2022-01-12), as its SDK's CreateTrainingJobRequest.to_map
# names them: a body may hold only these.
PAI_FIELDS = {
    "AlgorithmName",
    "AlgorithmProvider",
    "AlgorithmSpec",
    "AlgorithmVersion",
    "AssignNodeSpec",
    "CodeDir",
    "ComputeResource",
    "Environments",
    "ExperimentConfig",
    "HyperParameters",
    "InputChannels",
    "Labels",
    "OutputChannels",
    "Priority",
    "PythonRequirements",
    "RoleArn",
    "Scheduler",
    "Settings",
    "TrainingJobDescription",
    "TrainingJobName",
    "UserVpc",
    "WorkspaceId",
}

pytestmark = pytest.mark.django_db


def _body(template, run_id=42, settings=SETTINGS, params=None):
    return create_job_body(
        run_id=run_id,
        payload=template_payload(template, params),
        input_uri=f"oss://mlab-data/mlab/runs/{run_id}/input/sample.npz",
        output_uri=f"oss://mlab-data/mlab/runs/{run_id}/output/",
        settings=settings,
        code=CODE,
    )


@pytest.mark.parametrize("slug", BUILTIN_SLUGS)
def test_body_matches_its_golden_file(builtin_templates, slug):
    """Golden files were read by hand against PAI's CreateTrainingJob fields. MLAB_UPDATE_GOLDEN=1 rewrites
    them (and fails, so that a rewrite is always looked at)."""
    body = _body(builtin_templates[slug])
    path = GOLDEN / f"pai_{slug}.json"
    text = json.dumps(body, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("MLAB_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
        pytest.fail(f"{path.name} rewritten: review it by hand, then run without MLAB_UPDATE_GOLDEN")
    assert json.loads(path.read_text(encoding="utf-8")) == body


@pytest.mark.parametrize("slug", BUILTIN_SLUGS)
def test_body_uses_only_pai_fields_and_carries_the_whole_payload(builtin_templates, slug):
    payload = template_payload(builtin_templates[slug])
    body = create_job_body(
        run_id=7, payload=payload, input_uri="oss://b/i/s.npz", output_uri="oss://b/o/", settings=SETTINGS, code=CODE
    )
    assert set(body) <= PAI_FIELDS and set(body["AlgorithmSpec"]) <= SPEC_FIELDS
    assert {"TrainingJobName", "AlgorithmSpec", "HyperParameters", "InputChannels"} <= set(body)
    assert "AlgorithmName" not in body  # inline: PAI's SDK takes a spec or a name, never both
    spec = body["AlgorithmSpec"]
    assert spec["Image"] == IMAGE and spec["Command"] == ["python", "-m", "apps.training.trainer"]
    assert spec["CodeDir"] == {
        "LocationType": "oss",
        "LocationValue": {
            "Bucket": "mlab-data",
            "Key": "mlab/code/mlab-trainer-" + "ab" * 32 + ".tar.gz",
            "Endpoint": "oss-cn-hangzhou-internal.aliyuncs.com",
        },
    }
    assert [c["Name"] for c in spec["InputChannels"]] == ["train"]
    assert [c["Name"] for c in spec["OutputChannels"]] == ["model"]
    assert "auc" in {m["Name"] for m in spec["MetricDefinitions"]}
    assert spec["ProgressDefinitions"]["OverallProgress"]["Regex"]
    assert body["PythonRequirements"] == list(CODE.requirements)
    assert body["OutputChannels"] == [{"Name": "model", "OutputUri": "oss://b/o/"}]
    assert body["InputChannels"] == [{"Name": "train", "InputUri": "oss://b/i/s.npz"}]
    assert body["Scheduler"] == {"MaxRunningTimeInSeconds": 6 * 3600}
    assert body["WorkspaceId"] == "86400"
    assert from_hyperparameters(body["HyperParameters"]) == payload
    assert run_label(body) == "7"


def test_the_same_run_gives_the_same_body(builtin_templates):
    template = builtin_templates["binary-gbdt"]
    assert _body(template) == _body(template)
    assert _body(template, run_id=43)["Labels"][0] == {"Key": RUN_LABEL, "Value": "43"}


def test_a_registered_algorithm_comes_from_settings(builtin_templates):
    settings = JobSettings(
        workspace_id="w", algorithm_name="mlab-trainer-cn", algorithm_provider="acme", algorithm_version="v2"
    )
    body = _body(builtin_templates["binary-lr"], settings=settings)
    assert (body["AlgorithmName"], body["AlgorithmProvider"], body["AlgorithmVersion"]) == (
        "mlab-trainer-cn",
        "acme",
        "v2",
    )
    assert "AlgorithmSpec" not in body
    own = _body(builtin_templates["binary-lr"], settings=JobSettings(workspace_id="w", algorithm_name="mine"))
    assert "AlgorithmProvider" not in own  # a workspace's own algorithm


def test_role_environments_and_priority_pass_through_only_when_set(builtin_templates):
    plain = _body(builtin_templates["binary-lr"])
    assert not {"RoleArn", "Environments", "Priority"} & set(plain)
    settings = JobSettings(
        workspace_id="w",
        image=IMAGE,
        role_arn="acs:ram::123:role/mlab-pai-job",
        environments={"OMP_NUM_THREADS": "4", "A": 1},
        priority=7,
        python_requirements=False,
    )
    body = _body(builtin_templates["binary-lr"], settings=settings)
    assert body["RoleArn"] == "acs:ram::123:role/mlab-pai-job"
    assert body["Environments"] == {"A": "1", "OMP_NUM_THREADS": "4"}
    assert body["Priority"] == 7 and "PythonRequirements" not in body


def test_an_inline_spec_needs_the_code_and_an_image(builtin_templates):
    payload = template_payload(builtin_templates["binary-lr"])
    common = {"run_id": 1, "payload": payload, "input_uri": "oss://b/i", "output_uri": "oss://b/o/"}
    with pytest.raises(ValueError, match="code"):
        create_job_body(**common, settings=SETTINGS)
    with pytest.raises(ValueError, match="MLAB_PAI_IMAGE"):
        create_job_body(**common, settings=JobSettings(workspace_id="w"), code=CODE)


def test_a_registered_spec_declares_every_hyperparameter_a_job_sends(builtin_templates):
    spec = algorithm_spec(SETTINGS, code=CODE, declare_hyperparameters=True)
    declared = {h["Name"] for h in spec["HyperParameters"]}
    for slug in BUILTIN_SLUGS:
        sent = {h["Name"] for h in _body(builtin_templates[slug])["HyperParameters"]}
        assert sent <= declared, sent - declared
    assert next(h for h in spec["HyperParameters"] if h["Name"] == "mlabPlan")["Required"] is True


def test_compute_resource_from_core_num_and_memory(builtin_templates):
    template = builtin_templates["binary-lr"]
    sized = template_payload(template, {"train": {"coreNum": 8, "memSizePerCore": 4096}})
    plain = template_payload(template)
    quota = JobSettings(workspace_id="w", resource_id="quota12345")

    assert compute_resource(plain, SETTINGS) == {"EcsCount": 1, "EcsSpec": "ecs.c6.xlarge"}
    assert compute_resource(sized, SETTINGS) == {"EcsCount": 1, "EcsSpec": "ecs.g6.2xlarge"}
    assert compute_resource(sized, quota) == {
        "ResourceId": "quota12345",
        "InstanceCount": 1,
        "InstanceSpec": {"CPU": "8", "Memory": "32"},
    }
    assert compute_resource(plain, quota)["InstanceSpec"] == {"CPU": "4", "Memory": "8"}


@pytest.mark.parametrize(
    ("cores", "mb", "spec"),
    [
        (1, 1024, "ecs.c6.large"),
        (4, 2048, "ecs.c6.xlarge"),
        (5, 2049, "ecs.g6.2xlarge"),
        (100, 8192, "ecs.r6.26xlarge"),
    ],
)
def test_ecs_spec_is_the_smallest_that_fits(cores, mb, spec):
    assert ecs_spec_for(cores, mb) == spec


def test_what_no_single_instance_has_is_a_clear_error():
    with pytest.raises(ValueError, match="MLAB_PAI_RESOURCE_ID"):
        ecs_spec_for(200, 1024)
    with pytest.raises(ValueError, match="per core"):
        ecs_spec_for(4, 65536)


def test_a_body_needs_a_workspace_and_carries_its_run_label(builtin_templates):
    with pytest.raises(ValueError, match="MLAB_PAI_WORKSPACE_ID"):
        _body(builtin_templates["binary-lr"], settings=JobSettings(workspace_id=""))
    with pytest.raises(ValueError, match=RUN_LABEL):
        run_label({"Labels": [{"Key": "other", "Value": "1"}]})


def test_settings_are_read_from_django_settings(settings):
    settings.MLAB_PAI_WORKSPACE_ID = "ws-from-settings"
    settings.MLAB_PAI_RESOURCE_ID = "quota-1"
    settings.MLAB_PAI_MAX_RUNNING_SECONDS = 600
    job_settings = JobSettings.from_settings(settings)
    assert (job_settings.workspace_id, job_settings.resource_id, job_settings.max_running_seconds) == (
        "ws-from-settings",
        "quota-1",
        600,
    )
    assert job_settings.algorithm_name == ""  # empty by default: an inline AlgorithmSpec
    assert job_settings.inline and job_settings.job_type == "PyTorchJob"
