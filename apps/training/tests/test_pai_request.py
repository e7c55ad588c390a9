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
    compute_resource,
    create_job_body,
    ecs_spec_for,
    run_label,
)

from .pai_support import BUILTIN_SLUGS, template_payload

GOLDEN = Path(__file__).with_name("golden")
SETTINGS = JobSettings(workspace_id="86400")
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
        input_uri=f"oss://mlab-data/runs/{run_id}/input/sample.csv",
        output_uri=f"oss://mlab-data/runs/{run_id}/output/",
        settings=settings,
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
        run_id=7, payload=payload, input_uri="file:///in.csv", output_uri="oss://b/o/", settings=SETTINGS
    )
    assert set(body) <= PAI_FIELDS
    assert {"TrainingJobName", "AlgorithmName", "AlgorithmVersion", "HyperParameters", "InputChannels"} <= set(body)
    assert body["OutputChannels"] == [{"Name": "model", "OutputUri": "oss://b/o/"}]
    assert body["InputChannels"] == [{"Name": "train", "InputUri": "file:///in.csv"}]
    assert body["Scheduler"] == {"MaxRunningTimeInSeconds": 6 * 3600}
    assert body["WorkspaceId"] == "86400"
    assert from_hyperparameters(body["HyperParameters"]) == payload
    assert run_label(body) == "7"


def test_the_same_run_gives_the_same_body(builtin_templates):
    template = builtin_templates["binary-gbdt"]
    assert _body(template) == _body(template)
    assert _body(template, run_id=43)["Labels"][0] == {"Key": RUN_LABEL, "Value": "43"}


def test_algorithm_comes_from_settings(builtin_templates):
    settings = JobSettings(
        workspace_id="w", algorithm_name="mlab-trainer-cn", algorithm_provider="acme", algorithm_version="v2"
    )
    body = _body(builtin_templates["binary-lr"], settings=settings)
    assert (body["AlgorithmName"], body["AlgorithmProvider"], body["AlgorithmVersion"]) == (
        "mlab-trainer-cn",
        "acme",
        "v2",
    )
    assert "AlgorithmProvider" not in _body(builtin_templates["binary-lr"])  # a workspace's own algorithm


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
    assert job_settings.algorithm_name == "mlab-trainer"
