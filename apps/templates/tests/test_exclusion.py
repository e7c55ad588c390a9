"""Exclusion flags: a serialize=False parameter never reaches a payload; a secret never reaches a payload,
a log, a response or a stored copy of the parameters."""

from __future__ import annotations

import logging

import pytest

from apps.templates.nodes import registry
from apps.templates.payload import build_payload, mask_secrets, secret_values
from apps.templates.validation import template_specs, validate_run_params

pytestmark = pytest.mark.django_db
SECRET = "tok-Zx9-very-secret"


def _all_params():
    for node_type in registry:
        for param in node_type.params:
            yield node_type, param


def test_the_flags_are_declared_where_the_design_needs_them():
    flags = {(t.key, p.name): (p.serialize, p.secret) for t, p in _all_params()}
    assert flags[("sample.sql", "preview_rows")] == (False, False)
    assert flags[("sample.sql", "access_token")] == (True, True)


@pytest.mark.parametrize("slug", ["binary-lr", "binary-gbdt", "binary-rf", "regression-linear"])
def test_payload_leaves_out_ui_only_and_secret_parameters(builtin_templates, slug):
    template = builtin_templates[slug]
    specs = template_specs(template)
    cleaned = validate_run_params(template, {"sample": {"access_token": SECRET, "preview_rows": 50}})
    payload = build_payload(template_slug=slug, task=template.task_type, specs=specs, cleaned=cleaned)
    sample = next(n for n in payload["nodes"] if n["key"] == "sample")["params"]
    assert "preview_rows" not in sample and "access_token" not in sample
    assert SECRET not in repr(payload)
    for node in payload["nodes"]:
        node_type = registry.get(node["type"])
        assert set(node["params"]) == {p.name for p in node_type.params if p.serialize and not p.secret}


def test_masked_parameters_hide_the_secret_and_secret_values_keep_it(builtin_templates):
    template = builtin_templates["binary-lr"]
    specs = template_specs(template)
    cleaned = validate_run_params(template, {"sample": {"access_token": SECRET}})
    assert mask_secrets(specs, cleaned)["sample"]["access_token"] == "********"
    assert secret_values(specs, cleaned) == {"sample": {"access_token": SECRET}}
    unset = validate_run_params(template, {})
    assert mask_secrets(specs, unset)["sample"]["access_token"] is None


def test_api_never_echoes_a_secret_nor_logs_it(api, builtin_templates, caplog):
    caplog.set_level(logging.DEBUG)
    ok = api.post(
        "/api/v1/templates/binary-lr/validate/", {"params": {"sample": {"access_token": SECRET}}}, format="json"
    )
    bad = api.post(
        "/api/v1/templates/binary-lr/validate/",
        {"params": {"sample": {"access_token": SECRET}, "train": {"maxIter": -1}}},
        format="json",
    )
    wrong_type = api.post(
        "/api/v1/templates/binary-lr/validate/", {"params": {"sample": {"access_token": [SECRET]}}}, format="json"
    )
    assert ok.status_code == 200 and bad.status_code == 400 and wrong_type.status_code == 400
    for response in (ok, bad, wrong_type):
        assert SECRET not in response.content.decode()
    assert SECRET not in caplog.text


def test_api_metadata_never_shows_a_secret_default(api, builtin_templates):
    body = api.get("/api/v1/templates/binary-lr/").content.decode()
    assert '"secret":true' in body.replace(" ", "")


def test_templates_cannot_preset_or_lock_a_secret(builtin_templates):
    from django.core.exceptions import ValidationError

    node = builtin_templates["binary-lr"].nodes.get(key="sample")
    node.overrides = {**node.overrides, "access_token": SECRET}
    with pytest.raises(ValidationError, match="secret parameters cannot be preset"):
        node.full_clean()


def test_error_reports_find_the_secret_parameters_by_their_declaration():
    """The values of parameters declared secret=True (and only those) are found in Launch form fields, form
    posts to the API and JSON bodies, for error reports to mask (apps/templates/error_reports.py)."""
    from django.test import RequestFactory

    from apps.templates.error_reports import request_secret_values, secret_param_names
    from mlabsite.parsers import PARSED_JSON_ATTRIBUTE

    assert secret_param_names() == {"access_token"}
    form = RequestFactory().post(
        "/", {"sample__access_token": "from-the-form", "params.sample.access_token": "from-a-form-post",
              "sample__table": "not-secret", "access_token": "no-node"},
    )  # fmt: skip
    assert set(request_secret_values(form)) == {"from-the-form", "from-a-form-post"}
    api = RequestFactory().post("/", {}, content_type="application/json")
    setattr(api, PARSED_JSON_ATTRIBUTE, {"params": {"any_node": {"access_token": ["a", 42], "label": "x"}}})
    assert set(request_secret_values(api)) == {"a", "42"}
