"""The deploy API through its doors: scenes, versions, deployments, rollback; ownership and bad input."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.deploy.models import ConfigEntry, Deployment, ModelVersion
from apps.deploy.services import deployment_create, scene_create, scene_publish
from apps.training.models import TrainingRun
from conftest import token_client

pytestmark = pytest.mark.django_db


def url(route: str, **kwargs) -> str:
    return reverse(f"api:{route}", kwargs=kwargs)


def test_every_route_needs_a_token(anon_api, scene):
    for path in (
        url("scene-list"),
        url("scene-detail", name=scene.name),
        url("scene-version-list", name=scene.name),
        url("scene-deployment-list", name=scene.name),
    ):
        assert anon_api.get(path).status_code == 401
    for path in (url("scene-rollback", name=scene.name), url("scene-predict", name=scene.name)):
        assert anon_api.post(path, {}, format="json").status_code == 401


def test_create_a_scene_and_see_only_your_own(api, user, other_user):
    response = api.post(url("scene-list"), {"name": "ctr", "description": "ads", "owners": ["bob"]}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "ctr" and sorted(body["owners"]) == ["alice", "bob"]
    assert (body["revision"], body["versions"]) == (0, 0)
    scene_create(name="carols", user=None)
    assert [s["name"] for s in api.get(url("scene-list")).json()["results"]] == ["ctr"]
    assert api.get(url("scene-detail", name="carols")).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "seller-union-ctr"}, "name"),
        ({"name": "bad name!"}, "name"),
        ({"name": "x", "owners": ["zed"]}, "owners"),
        ({}, "name"),
    ],
)
def test_bad_scenes_are_400_naming_the_field(api, scene, body, field):
    response = api.post(url("scene-list"), body, format="json")
    assert response.status_code == 400 and field in response.json()


def test_register_a_run_then_again(api, scene, make_run):
    run = make_run(seed=4, metrics={"auc": 0.77})
    response = api.post(url("scene-version-list", name=scene.name), {"run": run.pk}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["scene"], body["version"], body["run"], body["template"]) == (scene.name, 1, run.pk, "binary-lr")
    assert body["sha256"] == run.artifact.sha256 and body["metrics"] == {"auc": 0.77}
    assert [f["name"] for f in body["signature"]] == ["age", "price", "city"]
    assert body["artifact_url"] == f"/api/v1/scenes/{scene.name}/versions/1/artifact/"
    again = api.post(url("scene-version-list", name=scene.name), {"run": run.pk}, format="json")
    assert again.status_code == 200 and again.json()["version"] == 1
    assert api.get(url("scene-version-detail", name=scene.name, version=1)).json()["sha256"] == run.artifact.sha256
    assert api.get(url("scene-version-detail", name=scene.name, version=2)).status_code == 404


def test_register_refuses_runs_that_did_not_succeed_or_are_not_yours(api, scene, make_run, other_user):
    path = url("scene-version-list", name=scene.name)
    running = make_run(status=TrainingRun.Status.RUNNING)
    response = api.post(path, {"run": running.pk}, format="json")
    assert response.status_code == 400 and "succeeded" in response.json()["run"][0]
    bobs = make_run(owner=other_user)
    assert api.post(path, {"run": bobs.pk}, format="json").json() == {"run": [f"You have no run {bobs.pk}."]}
    assert api.post(path, {"run": "x"}, format="json").status_code == 400
    assert not ModelVersion.objects.exists()


def test_version_list_costs_a_fixed_number_of_queries(api, scene, versions, django_assert_max_num_queries):
    path = url("scene-version-list", name=scene.name)
    api.get(path)  # the token's first use is recorded ("last used", at most once a minute)
    with django_assert_max_num_queries(8):  # 6, and the user's permissions and their groups'
        response = api.get(path)
    assert [v["version"] for v in response.json()["results"]] == [1, 2, 3]


def test_deploy_publishes_and_lists_deployments(api, scene, versions, run_jobs, django_capture_on_commit_callbacks):
    body = {
        "splits": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}],
        "overrides": {"u-7": 3},
        "comment": "try v2",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(url("scene-deployment-list", name=scene.name), body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["revision"] == 1 and response.json()["author"] == "alice"
    run_jobs()
    listing = api.get(url("scene-deployment-list", name=scene.name)).json()["results"]
    assert [(d["revision"], d["published"], d["comment"]) for d in listing] == [(1, True, "try v2")]
    assert api.get(url("scene-detail", name=scene.name)).json()["revision"] == 1


def test_deployment_list_costs_a_fixed_number_of_queries(api, scene, versions, user, django_assert_max_num_queries):
    for _ in range(5):
        deployment_create(scene=scene, splits=[{"version": 1, "weight": 100}], user=user)
    api.get(url("scene-deployment-list", name=scene.name))  # the token's first use is recorded
    with django_assert_max_num_queries(8):  # 6, and the user's permissions and their groups'
        response = api.get(url("scene-deployment-list", name=scene.name))
    assert len(response.json()["results"]) == 5


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"splits": [{"version": 1, "weight": 90.5}, {"version": 2, "weight": 9.5}]}, "splits", "whole percentage"),
        ({"splits": [{"version": 1, "weight": 90}]}, "splits", "sum to 100"),
        ({"splits": [{"version": 1, "weight": 110}, {"version": 2, "weight": -10}]}, "splits", "negative"),
        ({"splits": [{"version": 9, "weight": 100}]}, "splits", "not registered"),
        ({"splits": [{"version": 1, "weight": 50}, {"version": 1, "weight": 50}]}, "splits", "repeated"),
        ({"splits": []}, "splits", "at least one"),
        ({}, "splits", "required"),
        ({"splits": [{"version": 1, "weight": 100}], "overrides": {"u": 8}}, "overrides", "not registered"),
        (
            {"splits": [{"version": 1, "weight": 100}], "overrides": {f"u{i}": 1 for i in range(10_001)}},
            "overrides",
            "At most 10000 overrides",
        ),
    ],
    ids=[
        "fractional",
        "not-100",
        "negative",
        "unknown",
        "repeated",
        "empty",
        "missing",
        "unknown-override",
        "too-many",
    ],
)
def test_bad_deployments_are_400_naming_the_field(api, scene, versions, body, field, fragment):
    response = api.post(url("scene-deployment-list", name=scene.name), body, format="json")
    assert response.status_code == 400
    assert fragment in " ".join(response.json()[field])
    assert not Deployment.objects.exists()


def test_rollback_creates_a_new_revision_and_404s_an_unknown_one(api, scene, versions, user):
    deployment_create(scene=scene, splits=[{"version": 1, "weight": 100}], user=user)
    deployment_create(scene=scene, splits=[{"version": 2, "weight": 100}], user=user)
    path = url("scene-rollback", name=scene.name)
    response = api.post(path, {"revision": 1}, format="json")
    assert response.status_code == 201
    assert (response.json()["revision"], response.json()["rollback_of"]) == (3, 1)
    assert response.json()["splits"] == [{"version": 1, "weight": 100}]
    missing = api.post(path, {"revision": 42}, format="json")
    assert missing.status_code == 404 and "no revision 42" in missing.json()["detail"]
    assert api.post(path, {"revision": "first"}, format="json").json().keys() == {"revision"}


def test_a_business_developer_cannot_deploy_a_scene_they_do_not_own(scene, versions, other_business_user):
    bob = token_client(other_business_user)
    body = {"splits": [{"version": 1, "weight": 100}]}
    assert bob.post(url("scene-deployment-list", name=scene.name), body, format="json").status_code == 404
    assert bob.post(url("scene-rollback", name=scene.name), {"revision": 1}, format="json").status_code == 404
    assert bob.get(url("scene-version-list", name=scene.name)).status_code == 404
    assert not Deployment.objects.exists()


def test_a_client_token_cannot_use_the_other_routes(scene, versions, user, client_token):
    _, key = client_token
    client = token_client(user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get(url("scene-list")).status_code == 401
    assert client.get(url("scene-version-list", name=scene.name)).status_code == 401
    body = {"splits": [{"version": 1, "weight": 100}]}
    assert client.post(url("scene-deployment-list", name=scene.name), body, format="json").status_code == 401
    assert client.get("/api/v1/templates/").status_code == 401


def test_the_openapi_schema_lists_the_scene_routes(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    text = response.content.decode()
    for fragment in (
        "/api/v1/scenes/{name}/deployments/",
        "/api/v1/scenes/{name}/rollback/",
        "/api/v1/scenes/{name}/predict/",
        "/api/v1/scenes/{name}/events/",
        "/api/v1/scenes/{name}/results/",
    ):
        assert fragment in text


def test_scene_revision_follows_publication(api, scene, versions, user):
    deployment_create(scene=scene, splits=[{"version": 1, "weight": 100}], user=user)
    assert api.get(url("scene-detail", name=scene.name)).json()["revision"] == 0
    scene_publish(scene_id=scene.pk)
    assert (
        api.get(url("scene-detail", name=scene.name)).json()["revision"]
        == ConfigEntry.objects.get(scene=scene).revision
        == 1
    )


def test_scene_list_costs_a_fixed_number_of_queries(api, user, other_user, django_assert_max_num_queries):
    for index in range(5):
        scene_create(name=f"scene-{index}", owners=[other_user], user=user)
    api.get(url("scene-list"))  # the token's first use is recorded
    with django_assert_max_num_queries(7):  # 5, and the user's permissions and their groups'
        response = api.get(url("scene-list"))
    assert len(response.json()["results"]) == 5
