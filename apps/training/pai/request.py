"""The body of PAI's CreateTrainingJob (TrainingService / paistudio API 2022-01-12) for an Mlab run.

Field names are PAI's (``POST /api/v1/trainingjobs``, as ``CreateTrainingJobRequest`` of Alibaba's SDK names
them). The algorithm is Mlab's own trainer, so PAI and the local engine produce the same artifact, in one of
two forms:

- **inline** (``MLAB_PAI_ALGORITHM_NAME`` empty, the default): ``AlgorithmSpec`` carries the image
  (``MLAB_PAI_IMAGE``), a ``Command`` that runs ``python -m apps.training.trainer`` in ``/ml/usercode``, where
  PAI unpacks ``CodeDir`` (the trainer's archive on OSS, see :mod:`.trainer_code`), the ``train`` input and
  ``model`` output channels, and the ``MetricDefinitions`` / ``ProgressDefinitions`` that let PAI's console
  show the trainer's progress and AUC; the trainer's pinned requirements go in ``PythonRequirements``;
- **registered**: ``AlgorithmName`` / ``AlgorithmVersion`` (/ ``AlgorithmProvider``) of an algorithm that
  ``manage.py pai_register_algorithm`` created with the same spec (:func:`algorithm_spec`).

``RoleArn``, ``Environments`` and ``Priority`` are passed through when configured. Hyper-parameters: Mlab's
plan as one JSON ``mlabPlan``, PAI's own names as they are (:mod:`.hyperparameters`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from apps.templates.nodes import NodeKind, ParamType, registry
from apps.training.trainer import pai_layout

from .hyperparameters import PLAN_NAME, pai_name_of, to_hyperparameters
from .trainer_code import ENTRY_MODULE, TrainerCode

RUN_LABEL = "mlab-run-id"  # the idempotency key: a retried create finds the job by this label
TEMPLATE_LABEL = "mlab-template"
SOURCE_LABEL = "mlab-source"
INPUT_CHANNEL = pai_layout.INPUT_CHANNEL
OUTPUT_CHANNEL = pai_layout.OUTPUT_CHANNEL
CODE_DIR = "/ml/usercode"
TRAINER_COMMAND = ("python", "-m", ENTRY_MODULE)


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
    algorithm_name: str = ""  # empty: an inline AlgorithmSpec; else a registered algorithm of this name
    algorithm_provider: str = ""  # empty for a custom algorithm of the workspace: the key is left out
    algorithm_version: str = "v1.0.0"
    image: str = ""
    job_type: str = "PyTorchJob"
    python_requirements: bool = True
    role_arn: str = ""
    environments: Mapping[str, str] = field(default_factory=dict)
    priority: int = 0
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
            "image": "MLAB_PAI_IMAGE",
            "job_type": "MLAB_PAI_JOB_TYPE",
            "python_requirements": "MLAB_PAI_PYTHON_REQUIREMENTS",
            "role_arn": "MLAB_PAI_ROLE_ARN",
            "environments": "MLAB_PAI_ENVIRONMENTS",
            "priority": "MLAB_PAI_PRIORITY",
        }
        values = {key: getattr(settings, name) for key, name in names.items() if hasattr(settings, name)}
        return cls(**values)

    @property
    def inline(self) -> bool:
        return not self.algorithm_name


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
    *,
    run_id: int | str,
    payload: Mapping[str, Any],
    input_uri: str,
    output_uri: str,
    settings: JobSettings,
    code: TrainerCode | None = None,
) -> dict[str, Any]:
    """The CreateTrainingJob body for one run. The same run always gives the same body (no clock, no random).

    ``code`` is where the trainer's archive is on OSS (:func:`~.trainer_code.upload_trainer_code`): needed for
    an inline spec, and the source of ``PythonRequirements`` for both forms.
    """
    if not settings.workspace_id:
        raise ValueError("MLAB_PAI_WORKSPACE_ID is not set: PAI needs the workspace to create a job in.")
    body: dict[str, Any] = {
        "TrainingJobName": f"mlab-run-{run_id}",
        "TrainingJobDescription": f"Mlab training run {run_id} of template {payload['template']}",
    }
    if settings.inline:
        if code is None:
            raise ValueError("An inline AlgorithmSpec needs the trainer's code on OSS: upload it first.")
        body["AlgorithmSpec"] = algorithm_spec(settings, code=code)
    else:
        body["AlgorithmName"] = settings.algorithm_name
        body["AlgorithmVersion"] = settings.algorithm_version
        if settings.algorithm_provider:
            body["AlgorithmProvider"] = settings.algorithm_provider
    body.update(
        {
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
    )
    if code is not None and settings.python_requirements and code.requirements:
        body["PythonRequirements"] = list(code.requirements)
    if settings.role_arn:
        body["RoleArn"] = settings.role_arn
    if settings.environments:
        body["Environments"] = {str(k): str(v) for k, v in sorted(settings.environments.items())}
    if settings.priority:
        body["Priority"] = int(settings.priority)
    return body


def algorithm_spec(
    settings: JobSettings, *, code: TrainerCode, declare_hyperparameters: bool = False
) -> dict[str, Any]:
    """Mlab's trainer as PAI's ``AlgorithmSpec``: inline in a job, or registered (``declare_hyperparameters``:
    every hyper-parameter the trainer takes, as a registered algorithm must list them)."""
    if not settings.image:
        raise ValueError("MLAB_PAI_IMAGE is not set: an inline AlgorithmSpec needs a training image (Python 3.11).")
    channel = {"Required": True, "SupportedChannelTypes": ["oss"]}
    spec: dict[str, Any] = {
        "Image": settings.image,
        "JobType": settings.job_type,
        "Command": list(TRAINER_COMMAND),
        "CodeDir": code.location(),
        "InputChannels": [{"Name": INPUT_CHANNEL, "Description": "the run's sample (.npz)", **channel}],
        "OutputChannels": [{"Name": OUTPUT_CHANNEL, "Description": "model.onnx and report.json", **channel}],
        "MetricDefinitions": [
            {"Name": name, "Regex": pai_layout.metric_regex(name), "Description": f"{name} on the held-out split"}
            for name in pai_layout.METRIC_NAMES
        ],
        "ProgressDefinitions": {
            "OverallProgress": {"Regex": pai_layout.PROGRESS_REGEX, "Description": "percent done (0-100)"}
        },
        "SupportsDistributedTraining": False,
    }
    if declare_hyperparameters:
        spec["HyperParameters"] = hyperparameter_definitions()
    return spec


_PAI_TYPES = {ParamType.INT: "Int", ParamType.FLOAT: "Float", ParamType.BOOL: "Bool"}


def hyperparameter_definitions() -> list[dict[str, Any]]:
    """Every hyper-parameter Mlab's trainer takes: ``mlabPlan`` and each PAI name any node type declares."""
    found: dict[str, dict[str, Any]] = {
        PLAN_NAME: {
            "Name": PLAN_NAME,
            "Type": "String",
            "Required": True,
            "DisplayName": "Mlab plan",
            "Description": "Mlab's private plan (JSON): template, node chain, sample columns, private parameters.",
        }
    }
    for node_type in registry:
        for param in node_type.params:
            name = pai_name_of(node_type, param) if param.in_payload else None
            if name is None or name in found:
                continue
            found[name] = {
                "Name": name,
                "Type": _PAI_TYPES.get(param.type, "String"),
                "Required": False,
                "DisplayName": str(param.label)[:64],
                "Description": str(param.help or param.label)[:256],
            }
    return list(found.values())


def run_label(body: Mapping[str, Any]) -> str:
    """The run id a body carries in its idempotency label."""
    for label in body.get("Labels") or ():
        if label.get("Key") == RUN_LABEL and label.get("Value"):
            return str(label["Value"])
    raise ValueError(f"The body has no {RUN_LABEL} label: a create could not be made idempotent.")
