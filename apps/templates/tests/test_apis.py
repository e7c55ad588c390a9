"""The templates API: authentication, visibility, metadata, schema and validation errors."""

from __future__ import annotations

import re

import pytest

from apps.templates.services import template_create
from tests.factories import private_template

pytestmark = pytest.mark.django_db

ROUTES = ["/api/v1/templates/", "/api/v1/templates/binary-lr/", "/api/v1/templates/binary-lr/schema/"]


@pytest.mark.parametrize("url", ROUTES)
def test_every_route_needs_a_token(anon_api, builtin_templates, url):
    response = anon_api.get(url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_a_wrong_token_is_refused(anon_api, builtin_templates):
    anon_api.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert anon_api.get("/api/v1/templates/").status_code == 401
    assert anon_api.post("/api/v1/templates/binary-lr/validate/", {}, format="json").status_code == 401


def test_list_is_paginated_and_describes_nodes_and_parameters(api, builtin_templates, django_assert_max_num_queries):
    api.get("/api/v1/templates/")  # the token's first use records it ("last used", at most once a minute)
    # session-less token auth, the user's permissions and their groups' (2), count, templates, nodes
    with django_assert_max_num_queries(6):
        response = api.get("/api/v1/templates/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4
    lr = next(t for t in body["results"] if t["slug"] == "binary-lr")
    assert [n["key"] for n in lr["nodes"]] == [
        "sample",
        "fill_missing",
        "one_hot",
        "standardize",
        "split",
        "train",
        "evaluate",
    ]
    train = next(n for n in lr["nodes"] if n["key"] == "train")
    max_iter = next(p for p in train["params"] if p["name"] == "maxIter")
    assert max_iter == {
        **max_iter,
        "type": "int",
        "group": "parameters",
        "default": 100,
        "min": 1,
        "pai_name": None,
        "locked": False,
    }
    label = next(p for p in lr["nodes"][0]["params"] if p["name"] == "label")
    assert label["locked"] is True and label["default"] == "clicked" and label["pai_name"] == "labelColName"


def test_list_query_count_does_not_grow_with_templates(api, builtin_templates, user, django_assert_max_num_queries):
    for i in range(5):
        template_create(
            slug=f"mine-{i}",
            name=f"Mine {i}",
            task_type="binary",
            owner=user,
            nodes=[
                {"key": "sample", "type": "sample.sql"},
                {"key": "train", "type": "train.gbdt"},
                {"key": "evaluate", "type": "evaluate.binary"},
            ],
        )
    api.get("/api/v1/templates/")  # the token's first use is recorded
    with django_assert_max_num_queries(6):
        assert api.get("/api/v1/templates/").json()["count"] == 9


def test_unpublished_templates_of_others_are_invisible(api, builtin_templates, other_user):
    private_template(other_user, slug="bobs", name="Bob's")
    assert "bobs" not in [t["slug"] for t in api.get("/api/v1/templates/").json()["results"]]
    assert api.get("/api/v1/templates/bobs/").status_code == 404
    assert api.get("/api/v1/templates/bobs/schema/").status_code == 404


def test_schema_endpoint_serves_the_template_schema(api, builtin_templates):
    schema = api.get("/api/v1/templates/binary-gbdt/schema/").json()
    assert schema["properties"]["train"]["properties"]["treeCount"]["default"] == 60
    assert schema["properties"]["train"]["additionalProperties"] is False


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"train": {"maxIter": 0}}, {"train": {"maxIter": ["Must be at least 1."]}}),
        ({"train": {"maxIter": "many"}}, {"train": {"maxIter": ["Expected a whole number."]}}),
        ({"train": {"regularizedType": "l3"}}, {"train": {"regularizedType": ["Must be one of: l1, l2, None."]}}),
        ({"split": {"test_ratio": 0.9}}, {"split": {"test_ratio": ["Must be at most 0.5."]}}),
        ({"sample": {"label": "age"}}, {"sample": {"label": ["Locked by the template author; it cannot be changed."]}}),
        ({"sample": {"features": ["a", "a"]}}, {"sample": {"features": ["A column is listed twice."]}}),
        ({"train": "fast"}, {"train": ["Expected an object {parameter: value}."]}),
    ],
)
def test_bad_parameters_get_400_keyed_by_node_and_parameter(api, builtin_templates, params, expected):
    response = api.post("/api/v1/templates/binary-lr/validate/", {"params": params}, format="json")
    assert response.status_code == 400
    assert response.json() == {"params": expected}


def test_unknown_node_and_parameter_are_errors(api, builtin_templates):
    response = api.post(
        "/api/v1/templates/binary-lr/validate/",
        {"params": {"trian": {"maxIter": 5}, "train": {"max_iter": 5}}},
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()["params"]
    assert errors["trian"][0].startswith("Unknown node.")
    assert errors["train"]["max_iter"][0].startswith("Unknown parameter.")


@pytest.mark.parametrize("body", [[1, 2], {"params": [1]}, {"params": "x"}, "not json"])
def test_malformed_bodies_get_400_not_500(api, builtin_templates, body):
    if body == "not json":
        response = api.generic(
            "POST", "/api/v1/templates/binary-lr/validate/", "{oops", content_type="application/json"
        )
    else:
        response = api.post("/api/v1/templates/binary-lr/validate/", body, format="json")
    assert response.status_code == 400


def test_valid_parameters_return_the_payload(api, builtin_templates):
    response = api.post("/api/v1/templates/binary-lr/validate/", {"params": {"train": {"maxIter": 200}}}, format="json")
    assert response.status_code == 200
    nodes = {n["key"]: n for n in response.json()["payload"]["nodes"]}
    assert nodes["train"]["params"]["maxIter"] == 200
    assert nodes["sample"]["params"]["label"] == "clicked"


def test_openapi_schema_and_docs_are_served(api, builtin_templates, user, client):
    assert api.get("/api/schema/").status_code == 200
    client.force_login(user)
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    # The Swagger UI assets are ours (drf-spectacular-sidecar), never a CDN's: every script and stylesheet
    # the page loads is under our static URL. (Searching the page for "cdn" also matched CSRF tokens.)
    html = docs.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert assets and all(a.startswith("/static/") for a in assets), assets
