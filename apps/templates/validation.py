"""Validation of a template's chain and of the parameters of a run, from node metadata alone.

The admin Launch form, the API and the command line all call :func:`validate_run_params`; errors come back
keyed ``{node_key: {param: [message]}}`` (or ``{node_key: [message]}`` for a node-level problem).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlabsite.errors import FieldErrors

from .nodes import ColumnAllowList, NodeKind, NodeType, Task, ValidationContext, registry

if TYPE_CHECKING:
    from .models import AlgorithmTemplate, TemplateNode


class RunParamsInvalid(FieldErrors):
    """Run parameters that do not validate: ``errors`` keyed ``{node: {param: [message]}}`` (or ``{node:
    [message]}``); the API answers ``{"params": errors}``."""

    field = "params"


@dataclass(frozen=True)
class NodeSpec:
    """A template node as validation needs it."""

    key: str
    node_type: NodeType
    overrides: Mapping[str, Any]
    locked: frozenset[str]

    @classmethod
    def from_model(cls, node: TemplateNode) -> NodeSpec:
        return cls(node.key, registry.get(node.node_type), dict(node.overrides), frozenset(node.locked))


def template_specs(template: AlgorithmTemplate) -> list[NodeSpec]:
    return [NodeSpec.from_model(node) for node in template.nodes.all()]


def validate_run_params(
    template: AlgorithmTemplate,
    params: Mapping[str, Any],
    *,
    allowlist: ColumnAllowList | None = None,
    specs: list[NodeSpec] | None = None,
) -> dict[str, dict[str, Any]]:
    """Validate what a business developer submitted for a run; return the complete parameters per node.

    Omitted parameters (or ``null``) take the template's preset or the declared default. ``allowlist`` is
    the data source's tables and columns when known. Raises RunParamsInvalid.
    """
    specs = template_specs(template) if specs is None else specs
    if not isinstance(params, Mapping):
        raise RunParamsInvalid({"non_field_errors": ["Expected an object keyed by node."]})
    known = [spec.key for spec in specs]
    errors: dict[str, Any] = {
        key: [f"Unknown node. This template has: {', '.join(known)}."] for key in params if key not in known
    }
    context = ValidationContext(task=Task(template.task_type), allowlist=allowlist)
    cleaned: dict[str, dict[str, Any]] = {}
    for spec in specs:
        submitted = params.get(spec.key) or {}
        if not isinstance(submitted, Mapping):
            errors[spec.key] = ["Expected an object {parameter: value}."]
            continue
        submitted = {name: value for name, value in submitted.items() if value is not None}
        values, node_errors = spec.node_type.resolve(
            submitted, overrides=spec.overrides, locked=spec.locked, context=context
        )
        if node_errors:
            errors[spec.key] = node_errors
        cleaned[spec.key] = values
    if errors:
        raise RunParamsInvalid(errors)
    return cleaned


def template_chain_errors(
    template: AlgorithmTemplate, *, changed: TemplateNode | None = None, removed: TemplateNode | None = None
) -> list[str]:
    """What would be wrong with ``template``'s chain if ``changed`` were saved (added or edited) and ``removed``
    deleted; the chain as stored when both are None."""
    nodes: dict[object, tuple[int, str]] = {node.pk: (node.position, node.node_type) for node in template.nodes.all()}
    if removed is not None:
        nodes.pop(removed.pk, None)
    if changed is not None:
        nodes[changed.pk or "new"] = (changed.position, changed.node_type)
    return chain_errors(template.task_type, [node_type for _, node_type in sorted(nodes.values())])


_ORDER = {NodeKind.SAMPLE: 0, NodeKind.PREPROCESS: 1, NodeKind.SPLIT: 1, NodeKind.TRAIN: 2, NodeKind.EVALUATE: 3}


def chain_errors(task: str, node_types: Iterable[str]) -> list[str]:
    """What is wrong with a chain of node type keys, in position order, for a template of ``task``."""
    keys = list(node_types)
    unknown = [k for k in keys if k not in registry]
    if unknown:
        return [f"Unknown node type: {', '.join(unknown)}."]
    types = [registry.get(k) for k in keys]
    kinds = [t.kind for t in types]
    errors = []
    if not types or kinds[0] != NodeKind.SAMPLE:
        errors.append("The first node must be a sample node.")
    for kind, what in ((NodeKind.SAMPLE, "sample"), (NodeKind.TRAIN, "training"), (NodeKind.EVALUATE, "evaluation")):
        count = kinds.count(kind)
        if count != 1:
            errors.append(f"A template has exactly one {what} node (this one has {count}).")
    if kinds.count(NodeKind.SPLIT) > 1:
        errors.append("A template has at most one split node.")
    for node_type in types:
        if node_type.task is not None and node_type.task != task:
            errors.append(f"{node_type.key} is for {node_type.task} templates, not {task}.")
    ranks = [_ORDER[k] for k in kinds]
    if ranks != sorted(ranks):
        errors.append("Nodes run in this order: sample, then preprocessing and split, then training, then evaluation.")
    return errors
