"""Security issue 11: hostile or careless input replayed through the doors people use (the API, the admin).

Item 5: out-of-range dates are field errors, and error reports never show a secret. Item 6: deeply nested JSON
is a 400 (a form error in the admin), never a 500.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.training.models import TrainingRun

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
