"""mlabsite/jsonlimits.py, the API's parser and the form field: JSON from outside, with a nesting limit."""

from __future__ import annotations

import io
import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.exceptions import ParseError

from apps.templates.nodes import Param, ParamError, ParamType
from mlabsite.formfields import JSONFormField
from mlabsite.jsonlimits import MAX_DEPTH, JSONTooDeep, loads, nesting_depth
from mlabsite.parsers import DepthLimitedJSONParser

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:'),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(alphabet='[]{}"\\x'), children, max_size=3)
    ),
    max_leaves=12,
)


def depth_of(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    return 0


@given(JSON_VALUES)
def test_the_depth_counted_on_the_text_is_the_depth_of_the_value(value):
    """Brackets and escaped quotes inside strings do not count."""
    assert nesting_depth(json.dumps(value)) == depth_of(value)


@pytest.mark.parametrize(
    "text",
    [
        '"' + '\\"' * 500_000,  # an unterminated string full of escaped quotes
        '"a' + "[" * 1_000_000,
        '"' * 1_000_000 + "[",
        "\\" * 1_000_000 + '"' + '\\"' * 500_000,
    ],
)
def test_the_depth_of_hostile_text_is_counted_in_linear_time(text):
    started = time.perf_counter()
    nesting_depth(text)
    assert time.perf_counter() - started < 2.0  # ~0.2 s here; a quadratic scan would take hours


def test_loads_refuses_text_deeper_than_the_limit_before_parsing_it():
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    with pytest.raises(JSONTooDeep, match="nested deeper than 32 levels"):
        loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    with pytest.raises(JSONTooDeep):
        loads(b"[" * 100_000)  # not even valid: refused for its depth, without a RecursionError
    assert loads(b'{"a": "[[[[[["}') == {"a": "[[[[[["}


def test_the_api_parser_answers_parse_errors_for_deep_malformed_and_undecodable_bodies():
    parser = DepthLimitedJSONParser()
    assert parser.parse(io.BytesIO(b'{"params": {"train": {"maxIter": 5}}}')) == {"params": {"train": {"maxIter": 5}}}
    for body, message in [
        (b"[" * 10_000 + b"]" * 10_000, "nested deeper than 32 levels"),
        (b"{oops", "Expecting property name"),
        (b"[NaN]", "NaN"),
        (b'"\xff"', "can't decode"),
    ]:
        with pytest.raises(ParseError, match=message):
            parser.parse(io.BytesIO(body))


def test_the_form_field_refuses_deep_json_and_redisplays_it_without_parsing():
    field = JSONFormField(required=False)
    deep = "[" * 10_000 + "]" * 10_000
    with pytest.raises(Exception, match="Nested deeper than 32 levels"):
        field.clean(deep)
    assert field.bound_data(deep, None) == deep
    assert field.clean('{"a": [1]}') == {"a": [1]}


def test_the_command_line_refuses_json_too_deep_to_parse():
    with pytest.raises(ParamError, match="nested too deep"):
        Param("f", ParamType.CONDITIONS).parse_text("[" * 10_000 + "]" * 10_000)
