"""Issue 11 item 1: template nodes were open to every business developer. Only a template's owner (or a
superuser; built-in templates: superusers only) changes its nodes, every change keeps the chain runnable, the
node form offers only templates the user may change, and bulk delete deletes only the user's own templates.
Issue 14: the node views themselves are for superusers; an owner edits their nodes on the template's page."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.templates.models import AlgorithmTemplate, TemplateNode
from apps.templates.services import template_create, template_node_delete, template_node_save
from apps.training.launch import prepare_launch

pytestmark = pytest.mark.django_db

CHAIN = [
    {"key": "sample", "type": "sample.sql"},
    {"key": "train", "type": "train.gbdt"},
    {"key": "evaluate", "type": "evaluate.binary"},
]


def _node(template: AlgorithmTemplate, key: str) -> TemplateNode:
    return template.nodes.get(key=key)


def _node_form(node: TemplateNode, **changes) -> dict:
    data = {
        "template": node.template_id,
        "position": node.position,
        "key": node.key,
        "node_type": node.node_type,
        "overrides": '{"positive_value": "0"}',
        "locked": "[]",
    }
    return {**data, **changes}


@pytest.fixture
def own_template(business_user):
    return template_create(slug="mine", name="Mine", task_type="binary", nodes=CHAIN, owner=business_user)


@pytest.fixture
def others_template(other_user):
    return template_create(
        slug="theirs", name="Theirs", task_type="binary", nodes=CHAIN, owner=other_user, published=True
    )


def test_a_business_developer_cannot_change_or_delete_nodes_of_builtin_or_others_templates(
    client, business_user, builtin_templates, others_template
):
    client.force_login(business_user)
    for template in (builtin_templates["binary-lr"], others_template):
        sample = _node(template, "sample")
        url = reverse("admin:algo_templates_templatenode_change", args=[sample.pk])
        assert client.post(url, _node_form(sample)).status_code == 403
        sample.refresh_from_db()
        assert sample.overrides.get("positive_value") != "0"  # the label every user trains on is unchanged
        evaluate = _node(template, "evaluate")
        delete = reverse("admin:algo_templates_templatenode_delete", args=[evaluate.pk])
        assert client.post(delete, {"post": "yes"}).status_code == 403
        assert TemplateNode.objects.filter(pk=evaluate.pk).exists()


def _template_form(template: AlgorithmTemplate, **node_changes) -> dict:
    """The template page's form as posted: the template's fields and its nodes inline (``node_changes``: node key
    → the fields to change, or None to delete that node)."""
    nodes = list(template.nodes.order_by("position"))
    data = {
        "slug": template.slug,
        "name": template.name,
        "description": template.description,
        "task_type": template.task_type,
        "owner": template.owner_id or "",
        **({"published": "on"} if template.published else {}),
        "nodes-TOTAL_FORMS": str(len(nodes)),
        "nodes-INITIAL_FORMS": str(len(nodes)),
        "nodes-MIN_NUM_FORMS": "0",
        "nodes-MAX_NUM_FORMS": "1000",
    }
    for index, node in enumerate(nodes):
        fields = {
            "id": node.pk,
            "template": template.pk,
            "position": node.position,
            "key": node.key,
            "node_type": node.node_type,
            "overrides": json.dumps(node.overrides),
            "locked": json.dumps(node.locked),
        }
        change = node_changes.get(node.key, {})
        if change is None:
            fields["DELETE"] = "on"
        else:
            fields.update(change)
        data.update({f"nodes-{index}-{name}": value for name, value in fields.items()})
    return data


def test_the_owner_changes_their_node_on_the_template_page_but_no_change_may_break_the_chain(
    client, business_user, own_template
):
    client.force_login(business_user)
    sample = _node(own_template, "sample")
    for url in (
        reverse("admin:algo_templates_templatenode_change", args=[sample.pk]),
        reverse("admin:algo_templates_templatenode_add"),
        reverse("admin:algo_templates_templatenode_delete", args=[sample.pk]),
    ):
        assert client.post(url, _node_form(sample)).status_code == 403  # the node views are not theirs
    page = reverse("admin:algo_templates_algorithmtemplate_change", args=[own_template.pk])
    response = client.post(page, _template_form(own_template, sample={"overrides": '{"positive_value": "0"}'}))
    assert response.status_code == 302
    sample.refresh_from_db()
    assert sample.overrides == {"positive_value": "0"}

    response = client.post(page, _template_form(own_template, evaluate=None))
    assert response.status_code == 200 and "exactly one evaluation node" in response.content.decode()
    response = client.post(page, _template_form(own_template, train={"node_type": "evaluate.binary"}))
    assert response.status_code == 200 and "exactly one" in response.content.decode()
    assert own_template.nodes.count() == 3 and _node(own_template, "train").node_type == "train.gbdt"


def test_a_superuser_may_change_builtin_nodes_but_not_break_their_chain(client, django_user_model, builtin_templates):
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    evaluate = _node(builtin_templates["binary-rf"], "evaluate")
    response = client.post(reverse("admin:algo_templates_templatenode_delete", args=[evaluate.pk]), {"post": "yes"})
    assert response.status_code == 302 and TemplateNode.objects.filter(pk=evaluate.pk).exists()


def test_the_node_form_offers_only_templates_the_user_may_change(
    client, django_user_model, business_user, builtin_templates, own_template, others_template
):
    client.force_login(business_user)
    assert client.get(reverse("admin:algo_templates_templatenode_add")).status_code == 403
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    form = client.get(reverse("admin:algo_templates_templatenode_add")).context["adminform"].form
    assert set(form.fields["template"].queryset) == {own_template, others_template, *builtin_templates.values()}


def test_bulk_delete_refuses_a_batch_holding_templates_that_are_not_yours(
    client, business_user, builtin_templates, own_template, others_template
):
    client.force_login(business_user)
    url = reverse("admin:algo_templates_algorithmtemplate_changelist")
    mixed = [own_template.pk, others_template.pk, builtin_templates["binary-lr"].pk]
    response = client.post(url, {"action": "delete_own_selected", "_selected_action": mixed, "post": "yes"})
    assert response.status_code == 302
    assert AlgorithmTemplate.objects.filter(pk__in=mixed).count() == 3
    response = client.post(url, {"action": "delete_selected", "_selected_action": mixed, "post": "yes"})
    assert AlgorithmTemplate.objects.filter(pk__in=mixed).count() == 3  # Django's own bulk delete is not offered
    client.post(url, {"action": "delete_own_selected", "_selected_action": [own_template.pk], "post": "yes"})
    assert not AlgorithmTemplate.objects.filter(pk=own_template.pk).exists()


def test_the_services_keep_the_chain_runnable(own_template):
    with pytest.raises(ValidationError, match="exactly one evaluation node"):
        template_node_delete(node=_node(own_template, "evaluate"))
    extra = TemplateNode(template=own_template, key="train2", node_type="train.gbdt", position=4)
    with pytest.raises(ValidationError, match="exactly one training node"):
        template_node_save(node=extra)
    assert own_template.nodes.count() == 3


def test_a_template_whose_chain_was_broken_in_the_database_does_not_launch(own_template, duck_source):
    TemplateNode.objects.filter(template=own_template, key="evaluate").delete()  # bypassing the services
    with pytest.raises(ValidationError) as caught:
        prepare_launch(template=own_template, params={}, datasource=duck_source, engine="local")
    assert "cannot run" in caught.value.message_dict["template"][0]
