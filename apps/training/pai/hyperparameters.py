"""A training payload as PAI hyper-parameters, and back.

PAI passes a job's hyper-parameters as ``[{"Name", "Value"}]`` in the API and as a JSON object of strings in
the container (``/ml/input/config/hyperparameters.json``). What travels:

- each parameter that PAI itself knows by name, under that name, as PAI writes its values: a parameter's
  ``pai_name`` when it declares one (the sample node: ``labelColName``, ``featureColNames``, ``goodValue``…;
  the split node: ``randomSeed``), and every parameter of a node that stands for a PAI algorithm
  (``pai_algorithm`` is set: the train nodes, whose parameters are declared under PAI's names: ``maxIter``,
  ``treeCount``, ``coreNum``…). Values are strings: numbers as ``repr`` (``float(repr(x)) == x``), booleans
  ``true``/``false``, column lists comma-separated as PAI writes them, structured values as JSON;
- everything else, Mlab's private plan, as ONE hyper-parameter ``mlabPlan``: a JSON object with the template,
  the task, the node chain (keys and types), the sample's output columns, and the values of every parameter
  PAI has no name for, keyed ``<node key>.<param>``, as JSON values.

A parameter whose value is None is left out. Nothing secret can pass: the payload never holds a ``secret`` or
``serialize=False`` parameter, and :func:`to_hyperparameters` refuses one if it ever did.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from apps.templates.nodes import NodeType, Param, ParamError, ParamType, registry

PLAN_NAME = "mlabPlan"
PLAN_VERSION = 1
_STRUCTURED = (ParamType.CONDITIONS, ParamType.JOINS)


class HyperParameterError(ValueError):
    """The payload cannot be expressed as hyper-parameters, or hyper-parameters are not a payload."""


def pai_name_of(node_type: NodeType, param: Param) -> str | None:
    """The name PAI knows this parameter by, or None for a parameter only Mlab knows (it travels in the plan)."""
    if param.pai_name:
        return param.pai_name
    if node_type.pai_algorithm:
        return param.name
    return None


def hyperparameter_name(node_key: str, node_type: NodeType, param: Param) -> str:
    """PAI's name, else ``<node key>.<param>`` (the parameter's key inside ``mlabPlan``)."""
    return pai_name_of(node_type, param) or f"{node_key}.{param.name}"


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
    """The payload as PAI's ``HyperParameters``: ``mlabPlan`` first, then PAI's own names, names unique."""
    chain = _chain(payload)
    plan: dict[str, Any] = {
        "version": PLAN_VERSION,
        "template": str(payload["template"]),
        "task": str(payload["task"]),
        "nodes": [[key, node_type.key] for key, node_type, _ in chain],
    }
    if payload.get("sample") is not None:
        plan["sample"] = payload["sample"]
    private: dict[str, Any] = {}
    items: list[dict[str, str]] = []
    seen: dict[str, str] = {}
    for key, node_type, params in chain:
        for name, value in params.items():
            param = node_type.param_map.get(name)
            if param is None:
                raise HyperParameterError(f"{key}.{name}: {node_type.key} has no such parameter.")
            # The payload already excludes these; refusing here keeps a future bug from sending one to PAI.
            if not param.in_payload:
                raise HyperParameterError(f"{key}.{name} is secret or UI-only and never leaves Mlab.")
            pai_name = pai_name_of(node_type, param)
            if pai_name is None:
                if value is not None:
                    encode_value(param, value)  # the same type check as a PAI-named value
                    private[f"{key}.{name}"] = value
                continue
            if pai_name == PLAN_NAME:
                raise HyperParameterError(f"{key}.{name}: the name {PLAN_NAME} is reserved for Mlab.")
            if pai_name in seen:
                raise HyperParameterError(f"{key}.{name} and {seen[pai_name]} would both be sent as {pai_name}.")
            seen[pai_name] = f"{key}.{name}"
            if value is not None:
                items.append({"Name": pai_name, "Value": encode_value(param, value)})
    plan["params"] = private
    text = json.dumps(plan, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return [{"Name": PLAN_NAME, "Value": text}, *items]


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


def _plan(values: Mapping[str, str]) -> dict[str, Any]:
    if PLAN_NAME not in values:
        raise HyperParameterError(f"Not an Mlab job: the {PLAN_NAME} hyper-parameter is missing.")
    try:
        plan = json.loads(values[PLAN_NAME])
    except ValueError as exc:
        raise HyperParameterError(f"{PLAN_NAME} is not JSON: {exc}") from None
    if not isinstance(plan, dict) or plan.get("version") != PLAN_VERSION:
        raise HyperParameterError(f"{PLAN_NAME} is not a plan of version {PLAN_VERSION}.")
    missing = [name for name in ("template", "task", "nodes", "params") if name not in plan]
    if missing or not isinstance(plan["params"], dict):
        raise HyperParameterError(f"{PLAN_NAME} lacks {', '.join(missing) or 'its params object'}.")
    return plan


def from_hyperparameters(items: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Rebuild the exact payload from PAI's hyper-parameters (the API list or hyperparameters.json's object).

    Parameters of the chain that are absent were None. A name that belongs to no parameter is an error:
    the trainer must not silently train something other than what was asked.
    """
    values = _as_mapping(items)
    plan = _plan(values)
    try:
        chain = [(key, registry.get(type_key)) for key, type_key in plan["nodes"]]
    except (ValueError, TypeError, KeyError) as exc:
        raise HyperParameterError(f"{PLAN_NAME}.nodes is not a list of [node key, node type]: {exc}") from None

    used, private_used = {PLAN_NAME}, set()
    nodes = []
    for key, node_type in chain:
        params: dict[str, Any] = {}
        for param in node_type.params:
            if not param.in_payload:
                continue
            pai_name = pai_name_of(node_type, param)
            if pai_name is None:
                private = f"{key}.{param.name}"
                private_used.add(private)
                raw = plan["params"].get(private)
                try:
                    params[param.name] = None if raw is None else param.validate(raw)
                except (ParamError, ValueError) as exc:
                    raise HyperParameterError(f"{private}: {exc}") from None
            elif pai_name in values:
                params[param.name] = decode_value(param, values[pai_name])
                used.add(pai_name)
            else:
                params[param.name] = None
        nodes.append({"key": key, "type": node_type.key, "kind": node_type.kind.value, "params": params})
    payload: dict[str, Any] = {"template": plan["template"], "task": plan["task"], "nodes": nodes}
    if "sample" in plan:
        payload["sample"] = plan["sample"]
    unknown = sorted(set(values) - used) + sorted(set(plan["params"]) - private_used)
    if unknown:
        raise HyperParameterError(f"Hyper-parameters that belong to no node of the chain: {', '.join(unknown)}.")
    return payload
