"""The admin Launch form, the API and the JSON Schema judge the same parameters the same way.

Values are drawn per parameter with the right JSON type but without the constraints (so many are out of
range, off the choices, malformed names or dates), and submitted three ways: through the JSON Schema,
through POST /api/v1/templates/{slug}/validate/, and through the generated Launch form as a browser would
post it. All three must accept or refuse together, and the API and the form must name the same parameters.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.http import QueryDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.templates.builtins import BUILTIN_TEMPLATES
from apps.templates.forms import field_name, launch_form_class
from apps.templates.tests.test_schema import effective, sample_rule_violations, schema_of, schema_valid

pytestmark = pytest.mark.django_db

TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzAB_019-.;'é", min_size=1, max_size=10)


def _typed_value(prop: dict[str, Any]) -> st.SearchStrategy:
    """A value of the parameter's JSON type, constraints ignored. The form cannot tell an empty text or an
    empty list from a blank field (which means "use the default"), so those are left out."""
    types = prop.get("type") or []
    types = [types] if isinstance(types, str) else [t for t in types if t != "null"]
    kind = types[0] if types else "string"
    if "enum" in prop and kind == "string":
        return st.sampled_from([v for v in prop["enum"] if v is not None]) | TOKEN
    if kind == "integer":
        return st.integers(-(10**7), 10**7)
    if kind == "number":
        return st.floats(-1e7, 1e7, allow_nan=False) | st.integers(-1000, 1000)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        if prop["items"].get("type") == "string":
            return st.lists(TOKEN, min_size=1, max_size=4)
        if "oneOf" in prop["items"]:
            condition = st.fixed_dictionaries(
                {"column": TOKEN, "op": st.sampled_from(["=", "<", "in", "between", "is null", "like", "~"])},
                optional={"value": st.one_of(st.integers(-5, 5), TOKEN, st.lists(st.integers(0, 9), max_size=3))},
            )
            return st.lists(condition, min_size=1, max_size=3)
        return st.lists(st.fixed_dictionaries({"table": TOKEN, "on": TOKEN}), min_size=1, max_size=3)
    if prop.get("format") == "date":
        return st.dates().map(str) | TOKEN | st.sampled_from(["2026-02-30", "2026-1-5", "01/02/2026"])
    return TOKEN


def _form_text(value: Any, prop: dict[str, Any]) -> str:
    """How a browser posts ``value`` in the generated form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        if prop["items"].get("type") == "string":
            return ", ".join(value)
        return json.dumps(value)
    return repr(value) if isinstance(value, float) else str(value)


def _draw_params(data, schema) -> dict[str, dict[str, Any]]:
    params: dict[str, dict[str, Any]] = {}
    nodes = schema["properties"]
    for _ in range(data.draw(st.integers(1, 3))):
        node = data.draw(st.sampled_from(list(nodes)))
        name = data.draw(st.sampled_from(list(nodes[node]["properties"])))
        prop = nodes[node]["properties"][name]
        if prop.get("writeOnly"):
            continue  # secrets are write-only everywhere; covered by the exclusion tests
        params.setdefault(node, {})[name] = data.draw(_typed_value(prop))
    return params


def _api_errors(api, slug, params) -> set[str] | None:
    response = api.post(f"/api/v1/templates/{slug}/validate/", {"params": params}, format="json")
    assert response.status_code in (200, 400), response.content
    if response.status_code == 200:
        return None
    return {f"{node}.{name}" for node, errors in response.json()["params"].items() for name in errors}


def _form_errors(template, schema, params) -> set[str] | None:
    data = QueryDict(mutable=True)
    for node, values in params.items():
        for name, value in values.items():
            data[field_name(node, name)] = _form_text(value, schema["properties"][node]["properties"][name])
    form = launch_form_class(template)(data)
    if form.is_valid():
        return None
    assert not form.non_field_errors(), form.non_field_errors()
    return {name.replace("__", ".", 1) for name in form.errors}


@pytest.mark.parametrize("slug", [d["slug"] for d in BUILTIN_TEMPLATES])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=st.data())
def test_form_api_and_schema_agree(builtin_templates, api, slug, data):
    template = builtin_templates[slug]
    schema = schema_of(template)
    params = _draw_params(data, schema)
    by_schema = schema_valid(schema, params) and not sample_rule_violations(effective(schema, params, "sample"))
    api_errors = _api_errors(api, slug, params)
    form_errors = _form_errors(template, schema, params)
    assert (api_errors is None) == by_schema, (params, api_errors)
    assert form_errors == api_errors, params


def test_launch_form_has_every_parameter_grouped_per_node_with_defaults(builtin_templates):
    template = builtin_templates["binary-lr"]
    form = launch_form_class(template)()
    fieldsets = form.fieldsets()
    assert [f.spec.key for f in fieldsets] == [n.key for n in template.nodes.all()]
    sample = fieldsets[0]
    assert [g.group.value for g in sample.groups] == ["fields", "parameters", "tuning"]
    assert form.fields["train__maxIter"].initial == 100
    assert form.fields["sample__features"].initial.startswith("age, signup_days")
    assert form.fields["sample__label"].disabled and form.fields["sample__label"].initial == "clicked"
    assert form.fields["train__regularizedType"].initial == "l2"


def test_launch_form_refuses_a_tampered_locked_field_and_names_it(builtin_templates):
    form = launch_form_class(builtin_templates["binary-lr"])({"sample__label": "age"})
    assert not form.is_valid()
    assert form.errors["sample__label"] == ["Locked by the template author; it cannot be changed."]


def test_launch_form_blank_fields_take_defaults(builtin_templates):
    form = launch_form_class(builtin_templates["binary-gbdt"])({"train__treeCount": "", "train__maxDepth": "7"})
    assert form.is_valid(), form.errors
    assert form.validated_params["train"]["treeCount"] == 60  # the template's preset
    assert form.validated_params["train"]["maxDepth"] == 7
