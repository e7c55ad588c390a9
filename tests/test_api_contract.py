"""Responses conform to the published OpenAPI schema: regression tests of what the schemathesis check
(tests/schemathesis_api.py, ``make schemathesis``) found, each through the API's own doors."""

from __future__ import annotations

import pytest
import requests
import schemathesis

from apps.deploy.models import Deployment, ModelVersion
from apps.deploy.services import deployment_create, model_version_register, scene_create
from tests.factories import TrainingRunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def openapi(api):
    """The schema the API publishes at /api/schema/, loaded by schemathesis."""
    response = api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return schemathesis.openapi.from_dict(response.json())


def assert_conforms(openapi, method: str, path: str, response) -> None:
    """``response`` (from Django's test client) matches what the schema documents for its operation and status."""
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    request = requests.Request(method, f"http://testserver{response.request['PATH_INFO']}").prepare()
    headers = {name: [value] for name, value in response.items()}
    checked = schemathesis.Response(response.status_code, headers, response.content, request, 0.0, True)
    openapi[path][method].validate_response(checked)


def test_a_built_in_template_without_owner_conforms(api, openapi, builtin_templates):
    """Found by schemathesis: built-in templates have no owner (null), which the schema said was a string."""
    listed = api.get("/api/v1/templates/")
    assert any(t["owner"] is None for t in listed.json()["results"])
    assert_conforms(openapi, "GET", "/api/v1/templates/", listed)
    assert_conforms(openapi, "GET", "/api/v1/templates/{slug}/", api.get("/api/v1/templates/binary-lr/"))


def test_versions_and_deployments_whose_author_is_gone_conform(api, openapi, user, django_user_model):
    """The same mistake, found by reading the other serializers: a version's creator and a deployment's author
    are null once their account is deleted (SET_NULL)."""
    gone = django_user_model.objects.create_user("carol", is_staff=True)
    scene = scene_create(name="authorless", user=user)
    scene.owners.add(gone)
    model_version_register(run=TrainingRunFactory(owner=user), scene=scene, user=gone)
    deployment_create(scene=scene, user=gone, splits=[{"version": 1, "weight": 100}])
    gone.delete()
    assert ModelVersion.objects.get().created_by is None and Deployment.objects.get().author is None
    versions = api.get("/api/v1/scenes/authorless/versions/")
    assert versions.json()["results"][0]["created_by"] is None
    assert_conforms(openapi, "GET", "/api/v1/scenes/{name}/versions/", versions)
    version = api.get("/api/v1/scenes/authorless/versions/1/")
    assert_conforms(openapi, "GET", "/api/v1/scenes/{name}/versions/{version}/", version)
    deployments = api.get("/api/v1/scenes/authorless/deployments/")
    assert deployments.json()["results"][0]["author"] is None
    assert_conforms(openapi, "GET", "/api/v1/scenes/{name}/deployments/", deployments)


@pytest.mark.parametrize(
    "path",
    ["/api/v1/scenes/Regression · linear regression/rollback/", "/api/v1/nothing-here/", "/api/v1/runs/x/"],
)
def test_an_api_path_no_route_matches_is_a_json_404(api, path):
    """Found by schemathesis: a scene name with spaces matched no route and got Django's HTML 404 page, where the
    schema documents JSON. Under /api/ every such answer is JSON now (with DEBUG off, as deployed)."""
    response = api.post(path, {"revision": 1}, format="json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_pages_outside_the_api_keep_django_s_html_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_a_crash_under_the_api_is_a_json_500(api, monkeypatch):
    """What no view answers itself under /api/ is JSON, a crash included (the body says nothing of the cause)."""

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("apps.templates.apis.selectors.template_list", crash)
    api.raise_request_exception = False
    response = api.get("/api/v1/templates/")
    assert response.status_code == 500
    assert response.json() == {"detail": "Server error."}


def test_the_scene_name_a_client_may_create_is_documented_as_a_slug(api):
    """The schema states what the server accepts as a scene name (it said any text), so that generated requests
    and clients' own validation agree with the server."""
    schema = api.get("/api/schema/", {"format": "json"}).json()
    request_body = schema["paths"]["/api/v1/scenes/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    name = schema["components"]["schemas"][request_body["$ref"].rsplit("/", 1)[1]]["properties"]["name"]
    assert name["pattern"] == "^[-a-zA-Z0-9_]+$" and name["maxLength"] == 64
    assert api.post("/api/v1/scenes/", {"name": "two words"}, format="json").status_code == 400


@pytest.mark.parametrize("wait", ["null", "-1", "61", "nan"])
def test_a_refused_wait_is_documented_as_naming_its_field(api, openapi, wait):
    """Found by schemathesis (``?wait=null``): the config's 400 names the field, ``{"wait": [...]}``, as every
    400 of the API does, where the schema documented ``{"detail": ...}``."""
    refused = api.get(f"/api/v1/config/any-scene/?wait={wait}", HTTP_IF_NONE_MATCH='"r1"')
    assert refused.status_code == 400
    assert list(refused.json()) == ["wait"]
    assert_conforms(openapi, "GET", "/api/v1/config/{name}/", refused)
