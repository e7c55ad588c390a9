"""The training payload and what may be shown back: exclusion flags applied in one place.

A ``serialize=False`` parameter is UI-only: it never enters a payload. A ``secret=True`` parameter never
enters a payload, a log or a response; where the parameters are shown, it appears as a mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .nodes.base import MASK
from .validation import NodeSpec


def build_payload(
    *, template_slug: str, task: str, specs: list[NodeSpec], cleaned: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The payload a training engine receives: every node in order, with only serializable parameters."""
    return {
        "template": template_slug,
        "task": task,
        "nodes": [
            {
                "key": spec.key,
                "type": spec.node_type.key,
                "kind": spec.node_type.kind.value,
                "params": spec.node_type.payload(cleaned[spec.key]),
            }
            for spec in specs
        ],
    }


def mask_secrets(specs: list[NodeSpec], cleaned: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The validated parameters as they may be stored, logged and shown: secrets masked when set."""
    masked: dict[str, dict[str, Any]] = {}
    for spec in specs:
        values = dict(cleaned.get(spec.key, {}))
        for param in spec.node_type.params:
            if param.secret and values.get(param.name) is not None:
                values[param.name] = MASK
        masked[spec.key] = values
    return masked


def secret_values(specs: list[NodeSpec], cleaned: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Only the secrets that were set, for the code that must use them (never for storage or display)."""
    secrets: dict[str, dict[str, Any]] = {}
    for spec in specs:
        for param in spec.node_type.params:
            value = cleaned.get(spec.key, {}).get(param.name)
            if param.secret and value is not None:
                secrets.setdefault(spec.key, {})[param.name] = value
    return secrets
