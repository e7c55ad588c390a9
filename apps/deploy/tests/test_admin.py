"""The admin as a business developer uses it: the scene page, the split editor, rollback, registering a run,
client tokens. Plain HTML forms (no JavaScript needed)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils.html import escape

from apps.deploy.admin import register_run_url
from apps.deploy.models import ClientToken, ConfigEntry, Deployment, ModelVersion, Scene
from apps.deploy.services import client_token_digest, deployment_create, scene_create, scene_publish
from apps.training.humanize import human_size
from apps.training.models import TrainingRun
from mlabsite.roles import BUSINESS_DEVELOPERS, role_group

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(client, business_user):
    client.force_login(business_user)
    return client


def scene_url(scene) -> str:
    return reverse("admin:deploy_scene_change", args=[scene.pk])


def deploy_url(scene) -> str:
    return reverse("admin:deploy_scene_deploy", args=[scene.pk])


def split_post(weights: dict[int, int], overrides: str = "", comment: str = "") -> dict:
    return {
        **{f"split-weight_{v}": str(w) for v, w in weights.items()},
        "split-overrides": overrides,
        "split-comment": comment,
    }


def test_the_scene_page_shows_versions_side_by_side_config_and_history(alice, scene, versions, user):
    deployment_create(scene=scene, splits=[{"version": 1, "weight": 90}, {"version": 2, "weight": 10}], user=user)
    scene_publish(scene_id=scene.pk)
    deployment_create(scene=scene, splits=[{"version": 1, "weight": 50}, {"version": 2, "weight": 50}], user=user)
    scene_publish(scene_id=scene.pk)
    response = alice.get(scene_url(scene))
    assert response.status_code == 200
    html = response.content.decode()
    for version in versions:  # one row per version, with its metric, size, lineage
        assert f'data-version="{version.version}"' in html and version.sha256[:12] in html
        assert f"run {version.run_id}" in html and "Binary classification · logistic regression" in html
    assert re.search(r'<td class="mlab-key-metric">AUC <strong>0\.8\d\d</strong>', html)
    assert human_size(versions[0].size) in html
    assert 'name="split-weight_1" value="50"' in html and 'name="split-weight_3" value="0"' in html
    assert re.search(r'class="mlab-published-revision">2<', html)
    entry = ConfigEntry.objects.get(scene=scene)
    assert escape(entry.etag) in html and "&quot;allocation&quot;" in html
    assert "v1: 90% → 50%" in html and "v2: 10% → 50%" in html and ">40%<" in html  # diff and units moved
    assert 'value="Roll back to r1"' in html and 'value="Roll back to r2"' not in html


def test_the_split_editor_publishes_a_new_revision(alice, scene, versions, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = alice.post(deploy_url(scene), split_post({1: 80, 2: 20, 3: 0}, "vip-1 = 3\n\nvip-2=2", "canary"))
    assert response.status_code == 302 and response["Location"].endswith("#published")
    deployment = Deployment.objects.get(scene=scene)
    assert deployment.splits == [{"version": 1, "weight": 80}, {"version": 2, "weight": 20}]
    assert deployment.overrides == {"vip-1": 3, "vip-2": 2} and deployment.comment == "canary"
    assert len(callbacks) == 1  # publication is enqueued when the transaction commits


@pytest.mark.parametrize(
    ("post", "field", "message"),
    [
        (split_post({1: 80, 2: 10}), "split-errors", "must sum to 100; they sum to 90"),
        (split_post({1: 100, 2: -5}), "split-weight_2", "greater than or equal to 0"),
        (split_post({1: 99.5}), "split-weight_1", "Enter a whole number"),
        (split_post({1: 100}, "vip = 9"), "overrides-errors", "version 9 is not registered"),
        (split_post({1: 100}, "just-a-unit"), "overrides-errors", "Line 1"),
    ],
)
def test_the_split_editor_shows_errors_and_publishes_nothing(alice, scene, versions, post, field, message):
    response = alice.post(deploy_url(scene), post)
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html and "Nothing was published" in html
    if field.startswith("split-weight"):
        assert field in html
    else:
        assert f'id="{field}"' in html
    assert not Deployment.objects.exists()


def test_one_click_rollback(alice, scene, versions, user):
    deployment_create(scene=scene, splits=[{"version": 1, "weight": 100}], user=user)
    deployment_create(scene=scene, splits=[{"version": 2, "weight": 100}], user=user)
    response = alice.post(reverse("admin:deploy_scene_rollback", args=[scene.pk]), {"revision": "1"}, follow=True)
    assert "Rolled back: revision 3 copies revision 1" in response.content.decode()
    rollback = Deployment.objects.get(scene=scene, revision=3)
    assert rollback.rollback_of == 1 and rollback.splits == [{"version": 1, "weight": 100}]
    response = alice.post(reverse("admin:deploy_scene_rollback", args=[scene.pk]), {"revision": "77"}, follow=True)
    assert "has no such revision" in response.content.decode()
    assert Deployment.objects.filter(scene=scene).count() == 3
    assert alice.get(reverse("admin:deploy_scene_rollback", args=[scene.pk])).status_code == 405


def test_other_peoples_scenes_are_out_of_reach(client, other_user, scene, versions):
    other_user.groups.add(role_group(BUSINESS_DEVELOPERS))
    client.force_login(other_user)
    listing = client.get(reverse("admin:deploy_scene_changelist")).content.decode()
    assert scene.name not in listing
    assert client.get(scene_url(scene)).status_code == 302  # "does not exist", back to the list
    assert client.post(deploy_url(scene), split_post({1: 100})).status_code == 404
    assert client.post(reverse("admin:deploy_scene_rollback", args=[scene.pk]), {"revision": 1}).status_code == 404
    assert not Deployment.objects.exists()


def test_creating_a_scene_in_the_admin_makes_you_an_owner(alice, business_user):
    response = alice.post(reverse("admin:deploy_scene_add"), {"name": "new-ctr", "description": "ads"})
    assert response.status_code == 302, response.content.decode()[:3000]
    scene = Scene.objects.get(name="new-ctr")
    assert list(scene.owners.all()) == [business_user] and ConfigEntry.objects.filter(scene=scene).exists()


def test_register_a_run_from_its_id(alice, scene, make_run):
    run = make_run(seed=7)
    page = alice.get(register_run_url(run.pk))
    assert page.status_code == 200 and f"Run {run.pk}" in page.content.decode()
    response = alice.post(register_run_url(run.pk), {"scene": scene.pk})
    assert response.status_code == 302 and response["Location"] == scene_url(scene)
    assert ModelVersion.objects.get(scene=scene).run == run
    response = alice.post(register_run_url(run.pk), {"new_scene": "brand-new"})
    assert response.status_code == 302
    assert ModelVersion.objects.get(scene__name="brand-new").version == 1


def test_register_shows_why_a_run_cannot_be_registered(alice, scene, make_run, other_user):
    failed = make_run(status=TrainingRun.Status.FAILED)
    response = alice.post(register_run_url(failed.pk), {"scene": scene.pk})
    assert response.status_code == 200 and "only a succeeded run" in response.content.decode()
    response = alice.post(register_run_url(failed.pk), {})
    assert "Choose one of your scenes, or name a new one." in response.content.decode()
    taken = make_run()
    response = alice.post(register_run_url(taken.pk), {"new_scene": scene.name})
    assert "already exists" in response.content.decode()
    assert alice.get(register_run_url(make_run(owner=other_user).pk)).status_code == 404
    assert not ModelVersion.objects.exists()


def test_a_client_token_is_shown_once_and_stored_as_a_digest(alice, scene, user):
    scene_create(name="not-mine", user=None)
    form = alice.get(reverse("admin:deploy_clienttoken_add")).content.decode()
    assert scene.name in form and "not-mine" not in form
    response = alice.post(reverse("admin:deploy_clienttoken_add"), {"name": "ads-server", "scenes": [scene.pk]})
    assert response.status_code == 200
    key = re.search(r'id="mlab-client-token">(mlc_[^<]+)<', response.content.decode()).group(1)
    token = ClientToken.objects.get(name="ads-server")
    assert token.key == client_token_digest(key) and list(token.scenes.all()) == [scene]
    listing = alice.get(reverse("admin:deploy_clienttoken_changelist")).content.decode()
    assert "ads-server" in listing and key not in listing


def test_deleting_a_client_token_in_the_admin_revokes_it(alice, scene, user):
    from apps.deploy.services import client_token_create

    token, key = client_token_create(name="old-server", scenes=[scene], user=user)
    response = alice.post(reverse("admin:deploy_clienttoken_delete", args=[token.pk]), {"post": "yes"})
    assert response.status_code == 302 and not ClientToken.objects.exists()


def _live(html: str) -> str:
    return re.search(r'<section class="module mlab-section mlab-live" id="live">(.*?)</section>', html, re.S).group(1)


def test_what_is_live_reads_in_words_and_a_revision_on_its_way_says_publishing(alice, scene, versions, user):
    deployment_create(
        scene=scene, splits=[{"version": 1, "weight": 80}, {"version": 3, "weight": 20}], overrides={"vip-7": 2},
        user=user,
    )  # fmt: skip
    scene_publish(scene_id=scene.pk)
    page = alice.get(scene_url(scene)).content.decode()
    live = _live(page)
    assert re.search(r'id="mlab-live-split">v1 80% · v3 20% · 1 pinned unit<', live)
    assert re.search(r"<details class=\"mlab-raw-config\">", live)  # the raw config, folded
    row = re.search(r'<tr data-version="1" class="mlab-version-row">(.*?)</tr>', page, re.S)
    assert ">80%<" in row.group(1)
    results = re.search(r'<section class="module mlab-section mlab-results" id="results">(.*?)</section>', page, re.S)
    assert "no outcome recorded yet" in results.group(1) and 'id="results-waiting"' in results.group(1)

    # Saved, not yet published (no worker): "publishing…", never "published: no".
    response = alice.post(deploy_url(scene), split_post({1: 50, 2: 50, 3: 0}), follow=True)
    html = response.content.decode()
    live = _live(html)
    assert "Revision 2 of seller-union-ctr saved (v1 50% · v2 50%); it is being published." in live  # where one looks
    assert "Revision 2 (v1 50% · v2 50%) is publishing…" in live and 'data-publishing="2"' in html
    assert re.search(r'<tr data-revision="2" data-state="publishing">.*?publishing…', html, re.S)
    assert re.search(r'<tr data-revision="1" data-state="live">', html)
    assert '<ul class="messagelist">' not in html  # the message shows once, in the live section

    # Two revisions saved quickly: the older one is skipped, the newest publishes.
    alice.post(deploy_url(scene), split_post({1: 100, 2: 0, 3: 0}))
    scene_publish(scene_id=scene.pk)
    html = alice.get(scene_url(scene)).content.decode()
    assert re.search(r'<tr data-revision="2" data-state="skipped">', html)
    assert re.search(r'<tr data-revision="3" data-state="live">', html) and "data-publishing" not in html
    assert re.search(r'id="mlab-live-split">v1 100%<', html)


def test_the_scene_settings_are_their_own_form_and_publish_nothing(alice, scene, versions, business_user):
    html = alice.get(scene_url(scene)).content.decode()
    settings = re.search(
        r'<section class="module mlab-section mlab-scene-settings" id="scene-settings">(.*?)</section>', html, re.S
    )
    assert 'value="Save scene settings"' in settings.group(1) and "_continue" not in settings.group(1)
    assert 'name="split-weight_1"' not in settings.group(1)
    split = re.search(r'<section class="module mlab-section" id="split-editor">(.*?)</section>', html, re.S).group(1)
    assert 'value="Publish this split as revision 1"' in split and "description" not in split
    form = {"description": "new words", "owners": [business_user.pk], "_save": "1"}
    form.update(attribution_window=3600, guardrail_metric="", guardrail_alpha=0.01, guardrail_min_units=300)
    response = alice.post(scene_url(scene), form)
    assert response.status_code == 302 and response["Location"].endswith("#scene-settings")
    scene.refresh_from_db()
    assert scene.description == "new words" and not Deployment.objects.exists()


def test_register_preselects_the_scene_the_run_belongs_with(alice, scene, make_run, user):
    scene_create(name="another", user=user)
    run = make_run(seed=9)
    form = alice.get(register_run_url(run.pk)).context["form"]
    assert form.initial["scene"] is None  # two scenes, none with this template yet: the person chooses
    alice.post(register_run_url(run.pk), {"scene": scene.pk})
    second = make_run(seed=10)
    assert alice.get(register_run_url(second.pk)).context["form"].initial["scene"] == scene


def test_a_run_page_compares_the_run_with_the_versions_of_its_template_live_in_your_scenes(
    alice, scene, make_run, user
):
    live_run = make_run(seed=1, metrics={"auc": 0.79, "log_loss": 0.36})
    from apps.deploy.services import model_version_register

    model_version_register(run=live_run, scene=scene, user=user)
    deployment_create(scene=scene, splits=[{"version": 1, "weight": 100}], user=user)
    scene_publish(scene_id=scene.pk)
    challenger = make_run(seed=2, metrics={"auc": 0.81, "log_loss": 0.37})
    html = alice.get(reverse("admin:training_trainingrun_change", args=[challenger.pk])).content.decode()
    table = re.search(r'<table class="mlab-params mlab-live-compare" id="mlab-live-compare">(.*?)</table>', html, re.S)
    text = re.sub(r"<[^>]+>", " ", table.group(1))
    text = " ".join(text.split())
    assert "seller-union-ctr v1" in text and "serves 100.0% of units" in text
    assert "AUC 0.810 against 0.790: better by 0.020 (2.5%)" in text
    assert "Log loss 0.370 against 0.360: worse by 0.010 (2.8%)" in text


def test_the_split_editor_chooses_the_control_of_the_results(alice, scene, versions):
    response = alice.post(deploy_url(scene), {**split_post({1: 50, 2: 50}), "split-control": "2"})
    assert response.status_code == 302
    assert Deployment.objects.get(scene=scene).control == 2
    page = alice.get(scene_url(scene)).content.decode()
    assert '<option value="2" selected>v2</option>' in page
    refused = alice.post(deploy_url(scene), {**split_post({1: 100, 2: 0}), "split-control": "2"})
    assert refused.status_code == 400 and 'id="control-errors"' in refused.content.decode()
    assert "The control must be one of the versions given traffic (1)" in refused.content.decode()
