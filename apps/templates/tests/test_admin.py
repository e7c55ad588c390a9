"""The admin: template pages with their nodes' parameters, and the link to the Launch page."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_demo(client, business_user, builtin_templates):
    client.force_login(business_user)
    return client


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
