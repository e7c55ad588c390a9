"""The Launch page as a business developer uses it: the form generated from a template's node metadata,
field errors naming the parameter, the validated payload without secrets, and templates they may not see."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.factories import private_template

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_demo(client, business_user, builtin_templates):
    client.force_login(business_user)
    return client


def _launch_url(template):
    return reverse("admin:training_trainingrun_launch", args=[template.pk])


def test_launch_page_shows_generated_form_with_defaults_and_locked_fields(admin_client_demo, builtin_templates):
    response = admin_client_demo.get(_launch_url(builtin_templates["binary-lr"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r'<input type="number" name="train__maxIter" value="100"[^>]*min="1"', html)
    label = re.search(r'<input[^>]*name="sample__label"[^>]*>', html).group(0)
    assert 'value="clicked"' in label and "disabled" in label
    assert 'name="sample__access_token"' in html and 'type="password"' in html
    assert '<select name="train__regularizedType"' in html


def test_launch_page_shows_field_errors_naming_the_parameter(admin_client_demo, builtin_templates):
    template = builtin_templates["binary-lr"]
    response = admin_client_demo.post(
        _launch_url(template),
        {
            "train__maxIter": "0",
            "split__test_ratio": "abc",
            "train__regularizedType": "l9",
            "sample__label": "age",
        },
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors["train__maxIter"] == ["Must be at least 1."]
    assert errors["split__test_ratio"] == ["Enter a number."]
    assert "train__regularizedType" in errors
    assert errors["sample__label"] == ["Locked by the template author; it cannot be changed."]
    assert b"Parameters validated" not in response.content


def test_launch_page_validates_and_shows_the_payload_without_secrets(admin_client_demo, builtin_templates):
    response = admin_client_demo.post(
        _launch_url(builtin_templates["binary-lr"]),
        {
            "train__maxIter": "250",
            "sample__access_token": "tok-secret-123",
            "sample__preview_rows": "30",
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Parameters validated" in html
    assert "&quot;maxIter&quot;: 250" in html
    assert "tok-secret-123" not in html
    assert "preview_rows" not in response.context["payload_json"]


def test_launch_page_of_an_invisible_template_is_404(client, business_user, other_user, builtin_templates):
    hidden = private_template(other_user, slug="hidden")
    client.force_login(business_user)
    assert client.get(_launch_url(hidden)).status_code == 404
