"""JSON Schema (draft 2020-12) of a template's run parameters, generated from node metadata.

The schema is an object keyed by node key, then parameter name. It states every per-parameter rule the
validator applies (types, bounds, choices, name patterns, list shapes, locked values). Rules that relate
several parameters (the label is not a feature, a window ends after it starts, names exist in the data
source) are listed in each node's ``x-mlab-rules`` and enforced by the validator.
"""

from __future__ import annotations

from typing import Any

from .nodes.base import (
    IDENTIFIER_PATTERN,
    LIST_OPERATORS,
    MAX_CONDITIONS,
    MAX_LIST_VALUES,
    MAX_STR_LENGTH,
    NULL_OPERATORS,
    SCALAR_OPERATORS,
    Param,
    ParamType,
)
from .validation import NodeSpec

DIALECT = "https://json-schema.org/draft/2020-12/schema"

_IDENTIFIER = {"type": "string", "pattern": IDENTIFIER_PATTERN}
_SCALAR = {"type": ["string", "number", "boolean"], "maxLength": MAX_STR_LENGTH}

NODE_RULES = {
    "sample.sql": [
        "At least one numeric or categorical feature.",
        "A column is not both a numeric and a categorical feature.",
        "The label column is not a feature.",
        "date_from is not after date_to.",
        "A date window needs partition_column.",
        "Tables and columns exist in the chosen data source.",
    ],
}


def _condition_schema() -> dict[str, Any]:
    def shape(ops, value_schema, required=True):
        schema = {
            "type": "object",
            "properties": {"column": _IDENTIFIER, "op": {"enum": list(ops)}, "value": value_schema},
            "required": ["column", "op", "value"] if required else ["column", "op"],
            "additionalProperties": False,
        }
        return schema

    return {
        "oneOf": [
            shape(SCALAR_OPERATORS, _SCALAR),
            shape(LIST_OPERATORS, {"type": "array", "items": _SCALAR, "minItems": 1, "maxItems": MAX_LIST_VALUES}),
            shape(["between"], {"type": "array", "items": _SCALAR, "minItems": 2, "maxItems": 2}),
            shape(["like"], {"type": "string", "maxLength": MAX_STR_LENGTH}),
            shape(NULL_OPERATORS, {"type": "null"}, required=False),
        ]
    }


def date_range_pattern(low: str, high: str) -> str:
    """A regular expression matching the ``YYYY-MM-DD`` texts from ``low`` to ``high`` inclusive (ISO dates of
    four-digit years sort as text in date order). Whether the day exists is ``format: date``'s business. Only
    digits, dashes, ``\\d``, classes and groups: valid in Python and in ECMA-262 with the ``u`` flag alike."""
    if low == high:
        return low
    i = next(i for i, (a, b) in enumerate(zip(low, high, strict=True)) if a != b)
    a, b = int(low[i]), int(high[i])
    alternatives = [f"{a}{_at_least(low[i + 1 :])}"]
    if b - a > 1:
        alternatives.append(f"{_digits(a + 1, b - 1)}{_any_of_shape(low[i + 1 :])}")
    alternatives.append(f"{b}{_at_most(high[i + 1 :])}")
    return f"{low[:i]}(?:{'|'.join(alternatives)})"


def _at_least(text: str) -> str:
    """Texts of ``text``'s shape (digits and dashes) sorting at or after it."""
    if not text or text == "9" * len(text):
        return text
    if not text[0].isdigit():
        return text[0] + _at_least(text[1:])
    digit = int(text[0])
    higher = f"|{_digits(digit + 1, 9)}{_any_of_shape(text[1:])}" if digit < 9 else ""
    return f"(?:{digit}{_at_least(text[1:])}{higher})"


def _at_most(text: str) -> str:
    """Texts of ``text``'s shape sorting at or before it."""
    if not text:
        return ""
    if not text[0].isdigit():
        return text[0] + _at_most(text[1:])
    digit = int(text[0])
    lower = f"|{_digits(0, digit - 1)}{_any_of_shape(text[1:])}" if digit > 0 else ""
    return f"(?:{digit}{_at_most(text[1:])}{lower})"


def _digits(low: int, high: int) -> str:
    return str(low) if low == high else f"[{low}-{high}]"


def _any_of_shape(text: str) -> str:
    return "".join(r"\d" if c.isdigit() else c for c in text)


def _value_schema(param: Param) -> dict[str, Any]:
    t = param.type
    if t in (ParamType.INT, ParamType.FLOAT):
        schema: dict[str, Any] = {"type": "integer" if t == ParamType.INT else "number"}
        if param.min is not None:
            schema["exclusiveMinimum" if param.exclusive_min else "minimum"] = param.min
        if param.max is not None:
            schema["exclusiveMaximum" if param.exclusive_max else "maximum"] = param.max
        return schema
    if t == ParamType.STR:
        return {"type": "string", "maxLength": MAX_STR_LENGTH}
    if t == ParamType.BOOL:
        return {"type": "boolean"}
    if t == ParamType.CHOICE:
        return {"type": "string", "enum": list(param.choices)}
    if t == ParamType.DATE:
        assert isinstance(param.min, str) and isinstance(param.max, str)  # date parameters declare ISO bounds
        return {
            "type": "string",
            "format": "date",
            # JSON Schema compares no dates: the pattern states the range to every validator, and the
            # ajv-formats keywords say it readably.
            "pattern": f"^{date_range_pattern(param.min, param.max)}$",
            "formatMinimum": param.min,
            "formatMaximum": param.max,
        }
    if t in (ParamType.COLUMN, ParamType.TABLE):
        return dict(_IDENTIFIER)
    items: dict[str, Any]
    if t == ParamType.COLUMNS:
        items, extra = dict(_IDENTIFIER), {"uniqueItems": True}
    elif t == ParamType.JOINS:
        items = {
            "type": "object",
            "properties": {"table": _IDENTIFIER, "on": _IDENTIFIER},
            "required": ["table", "on"],
            "additionalProperties": False,
        }
        extra = {}
    else:
        items, extra = _condition_schema(), {}
    return {"type": "array", "items": items, "maxItems": param.max_items or MAX_CONDITIONS, **extra}


def param_schema(param: Param, *, value: Any, locked: bool) -> dict[str, Any]:
    """``value`` is the starting value (template preset or declared default)."""
    schema = _value_schema(param)
    if param.required and param.is_list:
        schema["minItems"] = 1
    if not (param.required and value is None):
        # null, like omitting the parameter, means "use the preset or default".
        schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    schema.update(
        {
            "title": param.label,
            "description": param.help,
            "x-mlab-group": param.group.value,
            "x-mlab-engines": list(param.engines),
        }
    )
    if param.pai_name:
        schema["x-pai-name"] = param.pai_name
    if not param.serialize:
        schema["x-mlab-serialize"] = False
    if param.secret:
        schema["writeOnly"] = True
    elif value is not None:
        schema["default"] = value
    if locked:
        schema["readOnly"] = True
        schema["enum"] = [value, None]
    return schema


def node_schema(spec: NodeSpec) -> dict[str, Any]:
    node_type = spec.node_type
    properties = {}
    required = []
    for param in node_type.params:
        value = spec.overrides.get(param.name, param.default)
        properties[param.name] = param_schema(param, value=value, locked=param.name in spec.locked)
        if param.required and value is None:
            required.append(param.name)
    schema: dict[str, Any] = {
        "type": "object",
        "title": node_type.label,
        "description": node_type.description,
        "properties": properties,
        "additionalProperties": False,
        "x-mlab-node-type": node_type.key,
        "x-mlab-kind": node_type.kind.value,
    }
    if required:
        schema["required"] = required
    if node_type.key in NODE_RULES:
        schema["x-mlab-rules"] = NODE_RULES[node_type.key]
    return schema


def template_json_schema(*, slug: str, name: str, description: str, specs: list[NodeSpec]) -> dict[str, Any]:
    nodes = {spec.key: node_schema(spec) for spec in specs}
    required = [key for key, schema in nodes.items() if schema.get("required")]
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": f"urn:mlab:template:{slug}:params",
        "title": f"Run parameters of {name}",
        "description": description,
        "type": "object",
        "properties": nodes,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema
