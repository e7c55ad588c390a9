"""``pai_register_algorithm``: Mlab's trainer as a custom algorithm of the workspace.

CreateAlgorithm (when the name is new), then CreateAlgorithmVersion with the spec an inline job would carry
(:func:`~.request.algorithm_spec`), declaring every hyper-parameter the trainer takes, its CodeDir the trainer
archive uploaded for this version. A version that already exists is left alone when it runs the same code, and
refused (naming the next free version) when it does not: a registered version never changes under running
jobs. Nothing here imports Django.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .client import PaiClient
from .oss import OssStore
from .request import JobSettings, algorithm_spec
from .trainer_code import TrainerCode, upload_trainer_code


class RegistrationRefused(ValueError):
    """The version exists with other code, or the settings cannot make a spec."""


@dataclass(frozen=True)
class Registration:
    algorithm_id: str
    name: str
    version: str
    code: TrainerCode
    created_algorithm: bool
    created_version: bool


def next_version(existing: set[str]) -> str:
    numbers = [tuple(int(p) for p in m.groups()) for v in existing if (m := re.match(r"^v(\d+)\.(\d+)\.(\d+)$", v))]
    major, minor, patch = max(numbers, default=(1, 0, -1))
    return f"v{major}.{minor}.{patch + 1}"


def register_algorithm(client: PaiClient, store: OssStore, settings: JobSettings) -> Registration:
    if not settings.algorithm_name:
        raise RegistrationRefused("Set MLAB_PAI_ALGORITHM_NAME (or --name): the name to register the trainer under.")
    code = upload_trainer_code(store)
    spec = algorithm_spec(settings, code=code, declare_hyperparameters=True)
    found = client.list_algorithms(settings.algorithm_name)
    created_algorithm = not found
    if found:
        algorithm_id = str(found[0]["AlgorithmId"])
    else:
        algorithm_id = client.create_algorithm(
            settings.algorithm_name,
            display_name="Mlab trainer",
            description="Mlab's trainer: a training payload and a sample in, a verified ONNX model and a report out.",
        )
    versions = {str(v.get("AlgorithmVersion")) for v in client.list_algorithm_versions(algorithm_id)}
    version = settings.algorithm_version
    if version in versions:
        registered = client.get_algorithm_version(algorithm_id, version).get("AlgorithmSpec") or {}
        if registered.get("CodeDir") == spec["CodeDir"] and registered.get("Image") == spec["Image"]:
            return Registration(algorithm_id, settings.algorithm_name, version, code, created_algorithm, False)
        raise RegistrationRefused(
            f"{settings.algorithm_name} {version} is registered with other code or another image; register this "
            f"trainer as {next_version(versions)} (--algorithm-version, then set MLAB_PAI_ALGORITHM_VERSION to it)."
        )
    client.create_algorithm_version(algorithm_id, version, spec)
    return Registration(algorithm_id, settings.algorithm_name, version, code, created_algorithm, True)
