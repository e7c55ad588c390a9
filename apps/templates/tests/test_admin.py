"""The admin: template pages with their nodes' parameters, and the Launch training page."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_demo(client, business_user, builtin_templates):
    client.force_login(business_user)
    return client


def _launch_url(template):
    return reverse("admin:training_trainingrun_launch", args=[template.pk])


def test_business_developer_sees_templates_and_their_parameters_in_three_groups(admin_client_demo, builtin_templates):
    template = builtin_templates["binary-rf"]
    listing = admin_client_demo.get(reverse("admin:algo_templates_algorithmtemplate_changelist"))
    assert listing.status_code == 200 and b"Launch training" in listing.content
    page = admin_client_demo.get(reverse("admin:algo_templates_algorithmtemplate_change", args=[template.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    for label in ("Fields setting", "Parameters setting", "Execution tuning"):
        assert label in html
    assert "treeNum" in html and "maxTreeDeep" in html and "labelColName" in html
    assert html.count("mlab-params") >= 7  # one parameter table per group per node


def test_builtin_templates_are_read_only_for_business_developers(admin_client_demo, builtin_templates):
    template = builtin_templates["binary-lr"]
    url = reverse("admin:algo_templates_algorithmtemplate_change", args=[template.pk])
    html = admin_client_demo.get(url).content.decode()
    assert 'name="_save"' not in html
    response = admin_client_demo.post(url, {"name": "hijacked"})
    assert response.status_code == 403
    template.refresh_from_db()
    assert template.name != "hijacked"


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
    from apps.templates.services import template_create

    hidden = template_create(
        slug="hidden",
        name="Hidden",
        task_type="binary",
        owner=other_user,
        nodes=[
            {"key": "sample", "type": "sample.sql"},
            {"key": "train", "type": "train.gbdt"},
            {"key": "evaluate", "type": "evaluate.binary"},
        ],
    )
    client.force_login(business_user)
    assert client.get(_launch_url(hidden)).status_code == 404


def test_admin_refuses_a_malformed_chain(client, django_user_model, builtin_templates):
    admin = django_user_model.objects.create_superuser("root", password="x")
    client.force_login(admin)
    url = reverse("admin:algo_templates_algorithmtemplate_add")
    data = {
        "slug": "mine",
        "name": "Mine",
        "task_type": "binary",
        "description": "",
        "nodes-TOTAL_FORMS": "1",
        "nodes-INITIAL_FORMS": "0",
        "nodes-MIN_NUM_FORMS": "0",
        "nodes-MAX_NUM_FORMS": "1000",
        "nodes-0-position": "0",
        "nodes-0-key": "train",
        "nodes-0-node_type": "train.gbdt",
        "nodes-0-overrides": "{}",
        "nodes-0-locked": "[]",
    }
    response = client.post(url, data)
    assert response.status_code == 200
    assert "The first node must be a sample node." in response.content.decode()
    data["nodes-0-overrides"] = '{"treeCount": -1}'
    response = client.post(url, data)
    assert "treeCount: Must be at least 1." in response.content.decode()
