"""Issue 11 item 8: a business developer saw the names of scenes it does not own (in list filters) and of
every user (in the owners widget). Filters list only the scenes and templates of rows the user sees; the
owners widget lists business developers only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.deploy.services import deployment_create, model_version_register, scene_create
from mlabsite.roles import BUSINESS_DEVELOPERS, role_group
from tests.factories import TrainingRunFactory, private_template

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_scenes(business_user, other_user):
    other_user.groups.add(role_group(BUSINESS_DEVELOPERS))
    scenes = {}
    for name, owner in (("mine-visible", business_user), ("theirs-secret", other_user)):
        scene = scene_create(name=name, user=owner)
        model_version_register(run=TrainingRunFactory(owner=owner), scene=scene, user=owner)
        deployment_create(scene=scene, splits=[{"version": 1, "weight": 100}], user=owner)
        scenes[name] = scene
    return scenes


@pytest.mark.parametrize("changelist", ["deploy_modelversion_changelist", "deploy_deployment_changelist"])
def test_list_filters_name_only_the_users_own_scenes(client, business_user, two_scenes, changelist):
    client.force_login(business_user)
    html = client.get(reverse(f"admin:{changelist}")).content.decode()
    assert "mine-visible" in html
    assert "theirs-secret" not in html


def test_the_run_list_filters_name_only_templates_of_the_users_runs(client, business_user, other_user, two_scenes):
    secret = private_template(other_user, slug="secret-chain", name="Secret chain of bob")
    TrainingRunFactory(owner=other_user, template=secret)
    client.force_login(business_user)
    html = client.get(reverse("admin:training_trainingrun_changelist")).content.decode()
    assert TrainingRunFactory._meta.model.objects.filter(owner=business_user).exists()
    assert "Secret chain of bob" not in html


def test_the_owners_widget_lists_business_developers_only(client, business_user, other_user, django_user_model):
    other_user.groups.add(role_group(BUSINESS_DEVELOPERS))
    django_user_model.objects.create_user("carol-not-a-developer", is_staff=True)
    django_user_model.objects.create_superuser("root-admin", password="x")
    client.force_login(business_user)
    form = client.get(reverse("admin:deploy_scene_add")).context["adminform"].form
    assert sorted(u.username for u in form.fields["owners"].queryset) == sorted(
        [business_user.username, other_user.username]
    )
