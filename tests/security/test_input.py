"""Security issue 11: hostile or careless input replayed through the doors people use (the API, the admin).

Item 5: out-of-range dates are field errors, and error reports never show a secret. Item 6: deeply nested JSON
is a 400 (a form error in the admin), never a 500.
"""

from __future__ import annotations

import re

import pytest
from django import forms
from django.contrib import admin
from django.test import RequestFactory
from django.urls import URLResolver, get_resolver, reverse

from apps.deploy.services import scene_create
from apps.templates.models import TemplateNode
from apps.training.models import DataSource, TrainingRun
from mlabsite.formfields import JSONFormField
from tests.factories import TrainingRunFactory

pytestmark = pytest.mark.django_db

OUT_OF_RANGE_DATES = [
    ("date_to", "9999-12-31", "Must be a date from 1000-01-01 to 9999-12-30."),  # the window's end + 1 day overflows
    ("date_from", "0999-12-31", "Must be a date from 1000-01-01 to 9999-12-31."),
]


def _run_body(**sample):
    return {"template": "binary-lr", "datasource": "demo", "params": {"sample": sample}}


@pytest.mark.parametrize(("param", "value", "message"), OUT_OF_RANGE_DATES)
def test_an_out_of_range_date_is_a_400_naming_node_and_parameter_in_preview(
    api, builtin_templates, duck_source, param, value, message
):
    """Issue 11 item 5: POST /api/v1/runs/preview/ with an out-of-range date answers 400 naming sample.<param>."""
    response = api.post("/api/v1/runs/preview/", _run_body(**{param: value}), format="json")
    assert response.status_code == 400, response.content[:300]
    assert response.json() == {"params": {"sample": {param: [message]}}}


@pytest.mark.parametrize(("param", "value", "message"), OUT_OF_RANGE_DATES)
def test_an_out_of_range_date_is_a_400_naming_node_and_parameter_in_runs(
    api, builtin_templates, duck_source, param, value, message
):
    """Issue 11 item 5: POST /api/v1/runs/ with an out-of-range date answers 400 and creates no run."""
    response = api.post("/api/v1/runs/", _run_body(**{param: value}), format="json")
    assert response.status_code == 400, response.content[:300]
    assert response.json() == {"params": {"sample": {param: [message]}}}
    assert not TrainingRun.objects.exists()


@pytest.mark.parametrize(("param", "value", "message"), OUT_OF_RANGE_DATES)
def test_an_out_of_range_date_is_a_400_naming_node_and_parameter_in_validate(
    api, builtin_templates, param, value, message
):
    """Issue 11 item 5: POST /api/v1/templates/{slug}/validate/ refuses an out-of-range date like the other doors."""
    response = api.post("/api/v1/templates/binary-lr/validate/", {"params": {"sample": {param: value}}}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert response.json() == {"params": {"sample": {param: [message]}}}


@pytest.mark.parametrize("button", ["_validate", "_preview", "_launch"])
@pytest.mark.parametrize(("param", "value", "message"), OUT_OF_RANGE_DATES)
def test_an_out_of_range_date_is_a_field_error_on_the_admin_launch_page(
    client, business_user, builtin_templates, duck_source, button, param, value, message
):
    """Issue 11 item 5: the admin Launch page shows an out-of-range date as an error on its field, for every
    button, and launches nothing."""
    client.force_login(business_user)
    url = reverse("admin:training_trainingrun_launch", args=[builtin_templates["binary-lr"].pk])
    response = client.post(url, {"datasource": "demo", "engine": "local", f"sample__{param}": value, button: "1"})
    assert response.status_code == 200
    assert response.context["form"].errors[f"sample__{param}"] == [message]
    assert not TrainingRun.objects.exists()


def test_a_filter_date_out_of_range_is_a_400_naming_the_filters(api, builtin_templates, duck_source):
    """Issue 11 item 5: a filter's date on a date column is held to the same range as the window's dates."""
    filters = [{"column": "ds", "op": "<", "value": "0999-01-01"}]
    response = api.post("/api/v1/runs/preview/", _run_body(filters=filters), format="json")
    assert response.status_code == 400, response.content[:300]
    (message,) = response.json()["params"]["sample"]["filters"]
    assert "dates run from 1000-01-01 to 9999-12-31" in message


# -- item 6: deeply nested JSON ------------------------------------------------------------------------------------
DEEP_JSON = "[" * 10_000 + "]" * 10_000
DEEP_OBJECT = '{"a": ' * 10_000 + "1" + "}" * 10_000


def _api_routes() -> list[str]:
    """Every URL pattern under /api/v1/, as route text (``scenes/<slug:name>/``…), read from the URL conf."""

    def walk(patterns, prefix):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern)

    return [route for route in walk(get_resolver().url_patterns, "/") if route.startswith("/api/v1/")]


@pytest.fixture
def route_values(user, builtin_templates):
    """A value for each URL parameter that names something the user may reach, so that a POST gets as far as
    reading its body. A new URL parameter needs a value here (the test says which)."""
    scene = scene_create(name="deep-json", user=user)
    run = TrainingRunFactory(owner=user)
    return {"slug": "binary-lr", "name": scene.name, "pk": run.pk, "version": 1}


@pytest.mark.parametrize("route", _api_routes())
@pytest.mark.parametrize("body", [DEEP_JSON, DEEP_OBJECT], ids=["arrays", "objects"])
def test_every_api_route_answers_deep_json_with_400_or_405(api, route_values, route, body):
    """Issue 11 item 6: a 10,000-level JSON body POSTed to any API route is a 400 (or a 405 where the route takes
    no POST), never a 500. The routes come from the URL conf, so a new route is covered without a new test."""

    def value(match: re.Match) -> str:
        assert match[1] in route_values, f"add a value for the URL parameter {match[1]!r} of {route}"
        return str(route_values[match[1]])

    url = re.sub(r"<(?:\w+:)?(\w+)>", value, route)
    response = api.post(url, body, content_type="application/json")
    if response.status_code == 405:
        return
    assert response.status_code == 400, (url, response.status_code, response.content[:300])
    assert response.json() == {"detail": "JSON parse error - nested deeper than 32 levels"}


def test_the_api_routes_taking_posts_are_all_covered():
    """The parametrized test above reaches every POST route of the API (it reads them from the URL conf)."""
    routes = set(_api_routes())
    for route in ("templates/<slug:slug>/validate/", "runs/", "runs/preview/", "runs/<int:pk>/cancel/",
                  "scenes/", "scenes/<slug:name>/deployments/", "scenes/<slug:name>/predict/"):  # fmt: skip
        assert f"/api/v1/{route}" in routes


def test_admin_data_source_options_too_deep_are_a_form_error(admin_client):
    """Issue 11 item 6: the data source admin's options (a JSON field) refuse 10,000-level JSON as a form error."""
    data = {"name": "deep", "kind": "duckdb", "description": "", "options": DEEP_JSON, "password_env": ""}
    response = admin_client.post(reverse("admin:training_datasource_add"), data)
    assert response.status_code == 200
    assert "Nested deeper than 32 levels." in response.context["adminform"].form.errors["options"]
    assert not DataSource.objects.filter(name="deep").exists()


def test_admin_template_node_overrides_too_deep_are_a_form_error(admin_client, builtin_templates):
    """Issue 11 item 6: a template node's overrides and locked lists (JSON fields) refuse 10,000-level JSON as
    form errors."""
    node = TemplateNode.objects.get(template=builtin_templates["binary-lr"], key="train")
    data = {"template": node.template_id, "position": node.position, "key": node.key, "node_type": node.node_type,
            "overrides": DEEP_OBJECT, "locked": DEEP_JSON}  # fmt: skip
    response = admin_client.post(reverse("admin:algo_templates_templatenode_change", args=[node.pk]), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["overrides"] == errors["locked"] == ["Nested deeper than 32 levels."]


def test_launch_page_filters_too_deep_are_a_field_error(client, business_user, builtin_templates, duck_source):
    """Issue 11 item 6: the Launch page's filters and joins (JSON fields) refuse 10,000-level JSON on the field."""
    client.force_login(business_user)
    url = reverse("admin:training_trainingrun_launch", args=[builtin_templates["binary-lr"].pk])
    response = client.post(url, {"datasource": "demo", "sample__filters": DEEP_JSON, "sample__joins": DEEP_OBJECT})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors["sample__filters"] == errors["sample__joins"] == ["Nested deeper than 32 levels."]


def test_every_json_field_of_the_admin_has_the_nesting_limit(admin_user):
    """Issue 11 item 6: every JSON form field of every admin page (and inline) is the depth-limited one, so that
    a new admin page with a JSON field cannot bring the 500 back."""
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    json_fields = []
    for model, model_admin in admin.site._registry.items():
        model_forms = [model_admin.get_form(request)]
        model_forms += [inline.get_formset(request).form for inline in model_admin.get_inline_instances(request)]
        for form in model_forms:
            for name, field in form.base_fields.items():
                if isinstance(field, forms.JSONField):
                    json_fields.append(f"{model.__name__}.{name}")
                    assert isinstance(field, JSONFormField), f"{model.__name__}.{name}"
    assert {"DataSource.options", "TemplateNode.overrides", "TemplateNode.locked"} <= set(json_fields)
