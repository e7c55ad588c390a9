"""The body of PAI's CreateTrainingJob (TrainingService / paistudio API 2022-01-12) for an Mlab run.

Field names are PAI's (``POST /api/v1/trainingjobs``): TrainingJobName, TrainingJobDescription, AlgorithmName,
AlgorithmProvider, AlgorithmVersion, HyperParameters, InputChannels, OutputChannels, ComputeResource,
Scheduler, Labels, WorkspaceId. The algorithm is Mlab's own trainer, registered in the workspace as a custom
algorithm (name, provider and version come from :class:`JobSettings`), so PAI and the local engine produce
the same artifact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apps.templates.nodes import NodeKind

from .hyperparameters import to_hyperparameters

RUN_LABEL = "mlab-run-id"  # the idempotency key: a retried create finds the job by this label
TEMPLATE_LABEL = "mlab-template"
SOURCE_LABEL = "mlab-source"
INPUT_CHANNEL = "train"
OUTPUT_CHANNEL = "model"


@dataclass(frozen=True)
class JobSettings:
    """What a deployment decides about its PAI jobs (``MLAB_PAI_*`` settings; see :meth:`from_settings`).

    ``resource_id`` is a PAI resource quota: jobs then run as one instance of ``coreNum`` CPUs and
    ``coreNum × memSizePerCore`` of memory (the defaults when the train node leaves them empty). Without a
    quota, jobs run on public resources: ``ecs_spec`` when the train node leaves coreNum and memSizePerCore
    empty, otherwise the smallest ECS type of the c6 / g6 / r6 family (2, 4 or 8 GiB per core) that has
    at least coreNum cores and memSizePerCore per core.
    """

    workspace_id: str
    algorithm_name: str = "mlab-trainer"
    algorithm_provider: str = ""  # empty for a custom algorithm of the workspace: the key is left out
    algorithm_version: str = "v1.0.0"
    resource_id: str = ""
    ecs_spec: str = "ecs.c6.xlarge"
    default_cores: int = 4
    default_memory_per_core_mb: int = 2048
    max_running_seconds: int = 6 * 3600

    @classmethod
    def from_settings(cls, settings: Any) -> JobSettings:
        """From an object with ``MLAB_PAI_*`` attributes (Django's settings); absent ones keep the defaults."""
        names = {
            "workspace_id": "MLAB_PAI_WORKSPACE_ID",
            "algorithm_name": "MLAB_PAI_ALGORITHM_NAME",
            "algorithm_provider": "MLAB_PAI_ALGORITHM_PROVIDER",
            "algorithm_version": "MLAB_PAI_ALGORITHM_VERSION",
            "resource_id": "MLAB_PAI_RESOURCE_ID",
            "ecs_spec": "MLAB_PAI_ECS_SPEC",
            "max_running_seconds": "MLAB_PAI_MAX_RUNNING_SECONDS",
        }
        values = {field: getattr(settings, name) for field, name in names.items() if hasattr(settings, name)}
        return cls(**values)


def _train_params(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    for node in payload["nodes"]:
        if node["kind"] == NodeKind.TRAIN.value:
            return node["params"]
    raise ValueError("The payload has no train node.")


# Alibaba's general-purpose ECS families by memory per core, and their sizes by vCPU count.
_ECS_FAMILIES = ((2048, "ecs.c6"), (4096, "ecs.g6"), (8192, "ecs.r6"))
_ECS_SIZES = (
    (2, "large"),
    (4, "xlarge"),
    (8, "2xlarge"),
    (12, "3xlarge"),
    (16, "4xlarge"),
    (24, "6xlarge"),
    (32, "8xlarge"),
    (52, "13xlarge"),
    (64, "16xlarge"),
    (104, "26xlarge"),
)


def ecs_spec_for(cores: int, memory_per_core_mb: int) -> str:
    """The smallest ECS instance type with at least ``cores`` vCPUs and ``memory_per_core_mb`` per vCPU."""
    family = next((name for per_core, name in _ECS_FAMILIES if memory_per_core_mb <= per_core), None)
    size = next((name for count, name in _ECS_SIZES if cores <= count), None)
    if family is None or size is None:
        raise ValueError(
            f"No single ECS instance has {cores} cores with {memory_per_core_mb} MB each "
            f"(at most {_ECS_SIZES[-1][0]} cores and {_ECS_FAMILIES[-1][0]} MB per core); "
            "lower coreNum or memSizePerCore, or set MLAB_PAI_RESOURCE_ID to a quota."
        )
    return f"{family}.{size}"


def compute_resource(payload: Mapping[str, Any], settings: JobSettings) -> dict[str, Any]:
    train = _train_params(payload)
    cores, mem_per_core = train.get("coreNum"), train.get("memSizePerCore")
    if not settings.resource_id:
        if cores is None and mem_per_core is None:
            return {"EcsCount": 1, "EcsSpec": settings.ecs_spec}
        spec = ecs_spec_for(cores or settings.default_cores, mem_per_core or settings.default_memory_per_core_mb)
        return {"EcsCount": 1, "EcsSpec": spec}
    cores = cores or settings.default_cores
    memory_gib = math.ceil(cores * (mem_per_core or settings.default_memory_per_core_mb) / 1024)
    return {
        "ResourceId": settings.resource_id,
        "InstanceCount": 1,
        # PAI takes these as strings: CPU cores and memory in GiB.
        "InstanceSpec": {"CPU": str(cores), "Memory": str(memory_gib)},
    }


def create_job_body(
    *, run_id: int | str, payload: Mapping[str, Any], input_uri: str, output_uri: str, settings: JobSettings
) -> dict[str, Any]:
    """The CreateTrainingJob body for one run. The same run always gives the same body (no clock, no random)."""
    if not settings.workspace_id:
        raise ValueError("MLAB_PAI_WORKSPACE_ID is not set: PAI needs the workspace to create a job in.")
    body: dict[str, Any] = {
        "TrainingJobName": f"mlab-run-{run_id}",
        "TrainingJobDescription": f"Mlab training run {run_id} of template {payload['template']}",
        "AlgorithmName": settings.algorithm_name,
        "AlgorithmVersion": settings.algorithm_version,
        "HyperParameters": to_hyperparameters(payload),
        "InputChannels": [{"Name": INPUT_CHANNEL, "InputUri": input_uri}],
        "OutputChannels": [{"Name": OUTPUT_CHANNEL, "OutputUri": output_uri}],
        "ComputeResource": compute_resource(payload, settings),
        "Scheduler": {"MaxRunningTimeInSeconds": settings.max_running_seconds},
        "Labels": [
            {"Key": RUN_LABEL, "Value": str(run_id)},
            {"Key": TEMPLATE_LABEL, "Value": str(payload["template"])},
            {"Key": SOURCE_LABEL, "Value": "mlab"},
        ],
        "WorkspaceId": settings.workspace_id,
    }
    if settings.algorithm_provider:
        body["AlgorithmProvider"] = settings.algorithm_provider
    return body


def run_label(body: Mapping[str, Any]) -> str:
    """The run id a body carries in its idempotency label."""
    for label in body.get("Labels") or ():
        if label.get("Key") == RUN_LABEL and label.get("Value"):
            return str(label["Value"])
    raise ValueError(f"The body has no {RUN_LABEL} label: a create could not be made idempotent.")
