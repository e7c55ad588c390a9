"""A training payload as PAI hyper-parameters, and back.

PAI passes a job's hyper-parameters as ``[{"Name", "Value"}]`` in the API and as a JSON object of strings in
the container (``/ml/input/config/hyperparameters.json``). Names:

- a parameter's ``pai_name`` when it declares one (the sample node: ``labelColName``, ``featureColNames``,
  ``goodValue``…; the split node: ``randomSeed``);
- the parameter's own name on nodes that stand for a PAI algorithm (``pai_algorithm`` is set: the train
  nodes, whose parameters are declared under PAI's names: ``maxIter``, ``treeCount``, ``coreNum``…);
- otherwise ``<node key>.<param>`` (``fill_missing.numeric_strategy``).

Values are strings: numbers as ``repr`` (``float(repr(x)) == x``), booleans ``true``/``false``, column lists
comma-separated as PAI writes them, structured values (filters, joins) as JSON. A parameter whose value is
None is left out. So that the trainer can rebuild the payload exactly, more entries carry the template, the
task, the node chain (keys and types) and the sample's output columns under names starting with ``__mlab_``,
which no node key (a letter first) and no PAI name can take.

Nothing secret can pass: the payload never holds a ``secret`` or ``serialize=False`` parameter, and
:func:`to_hyperparameters` refuses one if it ever did.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from apps.templates.nodes import NodeType, Param, ParamError, ParamType, registry

RESERVED_PREFIX = "__mlab_"
TEMPLATE_NAME = f"{RESERVED_PREFIX}template"
TASK_NAME = f"{RESERVED_PREFIX}task"
CHAIN_NAME = f"{RESERVED_PREFIX}nodes"
SAMPLE_NAME = f"{RESERVED_PREFIX}sample"  # optional: the sample's output columns (see apps.training.launch)
_META = (TEMPLATE_NAME, TASK_NAME, CHAIN_NAME)
_STRUCTURED = (ParamType.CONDITIONS, ParamType.JOINS)


class HyperParameterError(ValueError):
    """The payload cannot be expressed as hyper-parameters, or hyper-parameters are not a payload."""


def hyperparameter_name(node_key: str, node_type: NodeType, param: Param) -> str:
    if param.pai_name:
        return param.pai_name
    if node_type.pai_algorithm:
        return param.name
    return f"{node_key}.{param.name}"


def encode_value(param: Param, value: Any) -> str:
    """One payload value as PAI's string. Raises HyperParameterError when it does not fit its declaration."""
    kind = param.type
    if kind == ParamType.BOOL and isinstance(value, bool):
        return "true" if value else "false"
    if kind == ParamType.INT and isinstance(value, int) and not isinstance(value, bool):
        return repr(value)
    if kind == ParamType.FLOAT and isinstance(value, int | float) and not isinstance(value, bool):
        return repr(float(value))
    if kind == ParamType.COLUMNS and isinstance(value, list) and all(isinstance(c, str) for c in value):
        if any("," in c for c in value):
            raise HyperParameterError(f"{param.name}: a column name contains a comma.")
        return ",".join(value)
    if kind in _STRUCTURED and isinstance(value, list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if kind not in (ParamType.BOOL, ParamType.INT, ParamType.FLOAT, ParamType.COLUMNS, *_STRUCTURED) and isinstance(
        value, str
    ):
        return value
    raise HyperParameterError(f"{param.name}: {type(value).__name__} does not fit a {kind.value} parameter.")


def decode_value(param: Param, text: str) -> Any:
    """PAI's string back to the payload value, checked against the declaration."""
    kind = param.type
    try:
        if kind == ParamType.BOOL:
            if text not in ("true", "false"):
                raise ParamError("Expected true or false.")
            value: Any = text == "true"
        elif kind == ParamType.INT:
            value = int(text)
        elif kind == ParamType.FLOAT:
            value = float(text)
        elif kind == ParamType.COLUMNS:
            value = [c for c in text.split(",") if c]
        elif kind in _STRUCTURED:
            value = json.loads(text)
        else:
            value = text
        return param.validate(value)
    except (ValueError, ParamError) as exc:
        raise HyperParameterError(f"{param.name}: {exc}") from None


def _chain(payload: Mapping[str, Any]) -> list[tuple[str, NodeType, Mapping[str, Any]]]:
    try:
        nodes = payload["nodes"]
        return [(node["key"], registry.get(node["type"]), node["params"]) for node in nodes]
    except (KeyError, TypeError) as exc:
        raise HyperParameterError(f"Not a training payload: {exc}") from None


def to_hyperparameters(payload: Mapping[str, Any]) -> list[dict[str, str]]:
    """The payload as PAI's ``HyperParameters``: ``[{"Name": …, "Value": …}]``, names unique."""
    chain = _chain(payload)
    items = [
        {"Name": TEMPLATE_NAME, "Value": str(payload["template"])},
        {"Name": TASK_NAME, "Value": str(payload["task"])},
        {
            "Name": CHAIN_NAME,
            "Value": json.dumps([[key, node_type.key] for key, node_type, _ in chain], separators=(",", ":")),
        },
    ]
    if payload.get("sample") is not None:
        items.append({"Name": SAMPLE_NAME, "Value": json.dumps(payload["sample"], separators=(",", ":"))})
    seen: dict[str, str] = {}
    for key, node_type, params in chain:
        for name, value in params.items():
            param = node_type.param_map.get(name)
            if param is None:
                raise HyperParameterError(f"{key}.{name}: {node_type.key} has no such parameter.")
            # The payload already excludes these; refusing here keeps a future bug from sending one to PAI.
            if not param.in_payload:
                raise HyperParameterError(f"{key}.{name} is secret or UI-only and never leaves Mlab.")
            hp_name = hyperparameter_name(key, node_type, param)
            if hp_name.startswith(RESERVED_PREFIX):
                raise HyperParameterError(f"{key}.{name}: the name {hp_name} is reserved for Mlab.")
            if hp_name in seen:
                raise HyperParameterError(f"{key}.{name} and {seen[hp_name]} would both be sent as {hp_name}.")
            seen[hp_name] = f"{key}.{name}"
            if value is not None:
                items.append({"Name": hp_name, "Value": encode_value(param, value)})
    return items


def _as_mapping(items: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> dict[str, str]:
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        try:
            pairs = [(item["Name"], item["Value"]) for item in items]
        except (KeyError, TypeError):
            raise HyperParameterError('Hyper-parameters are [{"Name": …, "Value": …}] or {name: value}.') from None
    values: dict[str, str] = {}
    for name, value in pairs:
        if not isinstance(name, str) or not isinstance(value, str):
            raise HyperParameterError(f"Hyper-parameter {name!r}: names and values are strings.")
        if name in values:
            raise HyperParameterError(f"Hyper-parameter {name} appears twice.")
        values[name] = value
    return values


def from_hyperparameters(items: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Rebuild the exact payload from PAI's hyper-parameters (the API list or hyperparameters.json's object).

    Parameters of the chain that are absent were None. A name that belongs to no parameter is an error:
    the trainer must not silently train something other than what was asked.
    """
    values = _as_mapping(items)
    missing = [name for name in _META if name not in values]
    if missing:
        raise HyperParameterError(f"Not an Mlab job: {', '.join(missing)} missing.")
    try:
        chain = [(key, registry.get(type_key)) for key, type_key in json.loads(values[CHAIN_NAME])]
    except (ValueError, TypeError, KeyError) as exc:
        raise HyperParameterError(f"{CHAIN_NAME} is not a list of [node key, node type]: {exc}") from None

    used = set(_META)
    nodes = []
    for key, node_type in chain:
        params: dict[str, Any] = {}
        for param in node_type.params:
            if not param.in_payload:
                continue
            hp_name = hyperparameter_name(key, node_type, param)
            if hp_name in values:
                params[param.name] = decode_value(param, values[hp_name])
                used.add(hp_name)
            else:
                params[param.name] = None
        nodes.append({"key": key, "type": node_type.key, "kind": node_type.kind.value, "params": params})
    payload: dict[str, Any] = {"template": values[TEMPLATE_NAME], "task": values[TASK_NAME], "nodes": nodes}
    if SAMPLE_NAME in values:
        used.add(SAMPLE_NAME)
        try:
            payload["sample"] = json.loads(values[SAMPLE_NAME])
        except ValueError as exc:
            raise HyperParameterError(f"{SAMPLE_NAME} is not JSON: {exc}") from None
    unknown = sorted(set(values) - used)
    if unknown:
        raise HyperParameterError(f"Hyper-parameters that belong to no node of the chain: {', '.join(unknown)}.")
    return payload
