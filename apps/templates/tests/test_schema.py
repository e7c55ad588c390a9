"""The JSON Schema of each built-in template, against the validator: property tests.

Parameters are generated from the schema a client downloads (not from the node declarations), so these
tests fail when the schema and the validator drift apart.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.templates.builtins import BUILTIN_TEMPLATES
from apps.templates.schema import date_range_pattern, template_json_schema
from apps.templates.tests.schema_strategies import from_schema, out_of_bounds
from apps.templates.validation import RunParamsInvalid, template_specs, validate_run_params

pytestmark = pytest.mark.django_db
SLUGS = [d["slug"] for d in BUILTIN_TEMPLATES]
PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def schema_of(template) -> dict[str, Any]:
    return template_json_schema(
        slug=template.slug, name=template.name, description=template.description, specs=template_specs(template)
    )


def schema_valid(schema, instance) -> bool:
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return validator.is_valid(instance)


def effective(schema, params, node) -> dict[str, Any]:
    """Submitted values over the schema's defaults (null means default), as the schema documents."""
    properties = schema["properties"][node]["properties"]
    given_values = params.get(node) or {}
    return {
        name: given_values[name] if given_values.get(name) is not None else prop.get("default")
        for name, prop in properties.items()
    }


def sample_rule_violations(values) -> set[str]:
    """The sample node's cross-parameter rules, as listed in the schema's x-mlab-rules."""
    features, categorical = values["features"] or [], values["categorical_features"] or []
    violated = set()
    if not features and not categorical:
        violated.add("features")
    if set(features) & set(categorical):
        violated.add("categorical_features")
    if values["label"] in features or values["label"] in categorical:
        violated.add("label")
    if values["date_from"] and values["date_to"] and values["date_from"] > values["date_to"]:
        violated.add("date_to")
    if (values["date_from"] or values["date_to"]) and not values["partition_column"]:
        violated.add("partition_column")
    return violated


def test_schema_is_valid_draft_2020_12_and_keyed_by_node_then_parameter(builtin_templates):
    for template in builtin_templates.values():
        schema = schema_of(template)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert list(schema["properties"]) == [n.key for n in template.nodes.all()]
        for node in template.nodes.all():
            assert set(schema["properties"][node.key]["properties"]) == set(node.type.param_map)
        assert schema_valid(schema, {})  # every parameter has a preset or default in the built-ins


def test_schema_marks_secret_locked_and_ui_only_parameters(builtin_templates):
    sample = schema_of(builtin_templates["binary-lr"])["properties"]["sample"]["properties"]
    assert sample["access_token"]["writeOnly"] is True and "default" not in sample["access_token"]
    assert sample["label"]["readOnly"] is True and sample["label"]["enum"] == ["clicked", None]
    assert sample["preview_rows"]["x-mlab-serialize"] is False
    assert sample["label"]["x-pai-name"] == "labelColName"


@pytest.mark.parametrize("slug", SLUGS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_any_parameters_valid_under_the_schema_pass_validation(builtin_templates, slug, data):
    template = builtin_templates[slug]
    schema = schema_of(template)
    params = data.draw(from_schema(schema))
    assert schema_valid(schema, params), "the strategy must only draw schema-valid parameters"
    violated = sample_rule_violations(effective(schema, params, "sample"))
    if not violated:
        validate_run_params(template, params)
        return
    with pytest.raises(RunParamsInvalid) as invalid:
        validate_run_params(template, params)
    assert set(invalid.value.errors) == {"sample"}
    assert set(invalid.value.errors["sample"]) <= violated


def _bounded_params(template):
    schema = schema_of(template)
    for node, node_schema in schema["properties"].items():
        for name, prop in node_schema["properties"].items():
            if out_of_bounds(prop) is not None:
                yield node, name, prop


@pytest.mark.parametrize("slug", SLUGS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_any_out_of_bounds_value_fails_validation_naming_node_and_parameter(builtin_templates, slug, data):
    template = builtin_templates[slug]
    schema = schema_of(template)
    node, name, prop = data.draw(st.sampled_from(list(_bounded_params(template))))
    value = data.draw(out_of_bounds(prop))
    params = {node: {name: value}}
    assert not schema_valid(schema, params)
    with pytest.raises(RunParamsInvalid) as invalid:
        validate_run_params(template, params)
    assert list(invalid.value.errors) == [node]
    assert list(invalid.value.errors[node]) == [name]


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)


@pytest.mark.parametrize("slug", SLUGS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_schema_and_validator_agree_on_arbitrary_json(builtin_templates, slug, data):
    """Any JSON value for any parameter: the schema and the validator accept or refuse it together."""
    template = builtin_templates[slug]
    schema = schema_of(template)
    node = data.draw(st.sampled_from(list(schema["properties"])))
    name = data.draw(st.sampled_from(list(schema["properties"][node]["properties"])))
    params = {node: {name: data.draw(JSON_VALUES)}}
    by_schema = schema_valid(schema, params) and not sample_rule_violations(effective(schema, params, "sample"))
    try:
        validate_run_params(template, params)
        by_validator = True
    except RunParamsInvalid as invalid:
        by_validator = False
        assert invalid.errors  # never an empty error dict
    assert by_schema == by_validator, params


def test_unknown_nodes_and_parameters_are_refused_by_both(builtin_templates):
    template = builtin_templates["binary-gbdt"]
    schema = schema_of(template)
    for params in ({"nosuchnode": {}}, {"train": {"maxIter": 10}}, {"train": {"treeCount": 10, "x": 1}}):
        assert not schema_valid(schema, params)
        with pytest.raises(RunParamsInvalid):
            validate_run_params(template, params)


@settings(max_examples=300, deadline=None)
@given(bounds=st.lists(st.dates(), min_size=2, max_size=2).map(sorted), day=st.dates())
def test_the_date_range_pattern_matches_exactly_the_days_within_its_bounds(bounds, day):
    low, high = (d.isoformat() for d in bounds)
    pattern = date_range_pattern(low, high)
    assert set(pattern) <= set("0123456789-\\d[]()?:|")  # valid in ECMA-262 with the u flag as in Python
    for candidate in (day, bounds[0], bounds[1]):
        text = candidate.isoformat()
        assert bool(re.fullmatch(pattern, text)) == (low <= text <= high), (low, high, text)
