"""The admin: template pages with their nodes' parameters, and the link to the Launch page."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.templates.services import template_create

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


def test_the_template_page_draws_the_chain_and_reads_presets_and_locks_as_rows(admin_client_demo, builtin_templates):
    template = builtin_templates["binary-gbdt"]
    html = admin_client_demo.get(reverse("admin:algo_templates_algorithmtemplate_change", args=[template.pk])).content
    html = html.decode()
    chain = re.search(r'<svg class="mlab-chain".*?</svg>', html, re.S).group(0)
    keys = re.findall(r'class="mlab-chain-node" data-node="([^"]+)"', chain)
    assert keys == ["sample", "fill_missing", "one_hot", "split", "train", "evaluate"]
    assert "8 presets, 3 locked" in chain and "2 presets" in chain  # the sample node; the train node
    label = re.search(r'<tr data-param="label" class="mlab-locked-row">(.*?)</tr>', html, re.S).group(1)
    assert ">clicked<" in label and ">preset<" in label and ">locked<" in label
    joins = re.search(r'<tr data-param="joins">(.*?)</tr>', html, re.S).group(1)
    assert "users on user_id, items on item_id" in joins
    tree_count = re.search(r'<tr data-param="treeCount">(.*?)</tr>', html, re.S).group(1)
    assert ">60<" in tree_count and ">preset<" in tree_count and "locked" not in tree_count
    # Read-only for a business developer: no JSON editor of the nodes on the page.
    assert 'name="nodes-0-overrides"' not in html and '{"table"' not in html


def test_business_developers_cannot_reach_the_node_editing_views(admin_client_demo, builtin_templates, business_user):
    mine = template_create(slug="mine", name="Mine", task_type="binary", owner=business_user, nodes=_binary_nodes())
    node = mine.nodes.get(key="train")
    for url in (
        reverse("admin:algo_templates_templatenode_changelist"),
        reverse("admin:algo_templates_templatenode_add"),
        reverse("admin:algo_templates_templatenode_change", args=[node.pk]),
        reverse("admin:algo_templates_templatenode_delete", args=[node.pk]),
    ):
        assert admin_client_demo.get(url).status_code == 403, url
    index = admin_client_demo.get(reverse("admin:index")).content.decode()
    assert "templatenode" not in index and "Template nodes" not in index
    # Their own template's nodes are edited on the template's page (the services keep the chain runnable).
    page = admin_client_demo.get(reverse("admin:algo_templates_algorithmtemplate_change", args=[mine.pk])).content
    assert b'name="nodes-0-overrides"' in page


def _binary_nodes():
    return [
        {"key": "sample", "type": "sample.sql"},
        {"key": "split", "type": "split"},
        {"key": "train", "type": "train.logistic_regression"},
        {"key": "evaluate", "type": "evaluate.binary"},
    ]


def test_a_superuser_still_has_the_node_pages(client, django_user_model, builtin_templates):
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    node = builtin_templates["binary-lr"].nodes.get(key="train")
    assert client.get(reverse("admin:algo_templates_templatenode_changelist")).status_code == 200
    page = client.get(reverse("admin:algo_templates_templatenode_change", args=[node.pk])).content.decode()
    assert "maxIter" in page and "[1, 10,000]" in page  # the parameters table, with the allowed range
