"""Hypothesis strategies read off a JSON Schema, so that tests generate parameters from what clients see,
not from the node declarations the validator uses.

Supports the keywords the template schemas use: type (one or a list), enum, minimum / maximum and their
exclusive forms, pattern, maxLength, items, minItems, maxItems, uniqueItems, properties, required,
additionalProperties: false, oneOf, and format: date with formatMinimum / formatMaximum.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from hypothesis import strategies as st

_IDENT_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789"


def _identifier() -> st.SearchStrategy[str]:
    first = st.sampled_from(_IDENT_ALPHABET[:53])
    rest = st.text(alphabet=_IDENT_ALPHABET, max_size=12)
    return st.builds(lambda a, b: a + b, first, rest)


def _number(schema: dict[str, Any], integer: bool) -> st.SearchStrategy:
    low, high = schema.get("minimum"), schema.get("maximum")
    xlow, xhigh = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if integer:
        lo = low if low is not None else (math.floor(xlow) + 1 if xlow is not None else -(10**9))
        hi = high if high is not None else (math.ceil(xhigh) - 1 if xhigh is not None else 10**9)
        return st.integers(min_value=int(math.ceil(lo)), max_value=int(math.floor(hi)))
    return st.floats(
        min_value=low if low is not None else xlow if xlow is not None else -1e9,
        max_value=high if high is not None else xhigh if xhigh is not None else 1e9,
        exclude_min=low is None and xlow is not None,
        exclude_max=high is None and xhigh is not None,
        allow_nan=False,
        allow_infinity=False,
    )


def _of_type(schema: dict[str, Any], type_name: str) -> st.SearchStrategy:
    if type_name == "null":
        return st.none()
    if type_name == "boolean":
        return st.booleans()
    if type_name in ("integer", "number"):
        return _number(schema, type_name == "integer")
    if type_name == "string":
        if "pattern" in schema and schema["pattern"].startswith("^[A-Za-z_]"):
            return _identifier()
        if schema.get("format") == "date":
            low, high = (datetime.date.fromisoformat(schema[k]) for k in ("formatMinimum", "formatMaximum"))
            return st.dates(min_value=low, max_value=high).map(lambda d: d.isoformat())
        return st.text(max_size=min(schema.get("maxLength", 40), 40))
    if type_name == "array":
        items = from_schema(schema.get("items", {}))
        return st.lists(
            items,
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", 5), 5),
            unique_by=(lambda x: x) if schema.get("uniqueItems") else None,
        )
    if type_name == "object":
        return _object(schema)
    raise ValueError(f"unsupported type {type_name}")


def _object(schema: dict[str, Any]) -> st.SearchStrategy[dict]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))

    @st.composite
    def build(draw):
        result = {}
        for name, sub in properties.items():
            if name in required or draw(st.booleans()):
                result[name] = draw(from_schema(sub))
        return result

    return build()


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy:
    """Values valid under ``schema``."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "oneOf" in schema:
        return st.one_of(*(from_schema(s) for s in schema["oneOf"]))
    types = schema.get("type")
    if types is None:
        return st.none()
    if isinstance(types, str):
        types = [types]
    return st.one_of(*(_of_type(schema, t) for t in types))


def out_of_bounds(schema: dict[str, Any]) -> st.SearchStrategy | None:
    """Numbers just outside a numeric parameter's bounds, dates outside a date parameter's, or None when it has
    none."""
    if schema.get("format") == "date":
        return _dates_outside(schema["formatMinimum"], schema["formatMaximum"])
    types = schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")]
    integer = "integer" in types
    if not ({"integer", "number"} & set(types)):
        return None
    options = []
    step = 1 if integer else 1e-9
    if "minimum" in schema:
        options.append(st.just(schema["minimum"] - step))
        options.append(_below(schema["minimum"], integer))
    if "exclusiveMinimum" in schema:
        options.append(st.just(schema["exclusiveMinimum"] if not integer else math.floor(schema["exclusiveMinimum"])))
    if "maximum" in schema:
        options.append(st.just(schema["maximum"] + step))
        options.append(_above(schema["maximum"], integer))
    if "exclusiveMaximum" in schema:
        options.append(st.just(schema["exclusiveMaximum"] if not integer else math.ceil(schema["exclusiveMaximum"])))
    return st.one_of(*options) if options else None


def _dates_outside(low: str, high: str) -> st.SearchStrategy:
    """Calendar days (as YYYY-MM-DD) before ``low`` or after ``high``, the days next to them first."""
    options = []
    first, last = datetime.date.fromisoformat(low), datetime.date.fromisoformat(high)
    if first > datetime.date.min:
        before = first - datetime.timedelta(days=1)
        options += [st.just(before), st.dates(max_value=before)]
    if last < datetime.date.max:
        after = last + datetime.timedelta(days=1)
        options += [st.just(after), st.dates(min_value=after)]
    return st.one_of(*options).map(lambda d: d.isoformat())


def _below(bound: float, integer: bool) -> st.SearchStrategy:
    if integer:
        return st.integers(max_value=int(math.ceil(bound)) - 1, min_value=int(bound) - 10**9)
    return st.floats(max_value=bound, exclude_max=True, min_value=bound - 1e9, allow_nan=False)


def _above(bound: float, integer: bool) -> st.SearchStrategy:
    if integer:
        return st.integers(min_value=int(math.floor(bound)) + 1, max_value=int(bound) + 10**9)
    return st.floats(min_value=bound, exclude_min=True, max_value=bound + 1e9, allow_nan=False)
