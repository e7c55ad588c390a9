"""Ways in and out (issue 14 item 7): "/" leads to the admin, the admin's header leads to the API docs, the
docs send a logged-out person to log in, and the OpenAPI schema documents every public route, the plain
Django views (config, artifact, healthz) included."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

pytestmark = pytest.mark.django_db

NOT_API = ("admin/", "django-rq/", "api/schema/", "api/docs/")


def test_the_root_redirects_to_the_admin(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == reverse("admin:index")


def test_logged_out_the_api_docs_send_you_to_log_in_and_back(client, user):
    response = client.get("/api/docs/")
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next=/api/docs/"
    client.force_login(user)
    assert client.get("/api/docs/").status_code == 200


def test_the_admin_header_links_to_the_api_docs_and_the_index_starts_with_launch(
    client, business_user, builtin_templates
):
    client.force_login(business_user)
    html = client.get(reverse("admin:index")).content.decode()
    assert '<a href="/api/docs/" id="mlab-api-docs-link">API docs</a>' in html and "View site" not in html
    launches = re.findall(r'<a class="button mlab-start-launch" href="([^"]+)" data-template="([^"]+)"', html)
    assert {slug for _, slug in launches} == set(builtin_templates)
    url, slug = launches[0]
    assert url == reverse("admin:training_trainingrun_launch", args=[builtin_templates[slug].pk])


def _routes(resolver=None, prefix: str = "") -> list[str]:
    routes = []
    for entry in (resolver or get_resolver()).url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            routes += _routes(entry, route)
        elif isinstance(entry, URLPattern) and route and not route.startswith(NOT_API):
            routes.append(route)
    return routes


def test_the_schema_documents_every_public_route(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    documented = set(schema["paths"])
    # drf-spectacular names a model's primary key {id}, as the API's fields do.
    routes = {"/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route).replace("{pk}", "{id}") for route in _routes()}
    assert routes >= {"/healthz", "/api/v1/config/{name}/", "/api/v1/scenes/{name}/versions/{version}/artifact/"}
    assert routes <= documented, routes - documented
    config = schema["paths"]["/api/v1/config/{name}/"]["get"]
    assert {"200", "304", "401", "403", "404"} <= set(config["responses"])
    assert {p["name"] for p in config["parameters"]} == {"name", "wait", "If-None-Match"}
    allocation = schema["components"]["schemas"]["ClientConfig"]["properties"]["allocation"]
    assert allocation["type"] == "array"
    artifact = schema["paths"]["/api/v1/scenes/{name}/versions/{version}/artifact/"]["get"]
    assert "application/octet-stream" in artifact["responses"]["200"]["content"]
    assert schema["paths"]["/healthz"]["get"]["responses"]["503"]


def test_documenting_the_plain_views_leaves_them_plain(settings):
    """The routes still resolve to the plain views (no DRF on the polled path)."""
    from apps.deploy.apis import artifacts, config

    assert get_resolver().resolve("/api/v1/config/ctr/").func is config.config_view_sync
    assert get_resolver().resolve("/api/v1/scenes/ctr/versions/1/artifact/").func is artifacts.artifact_view_sync
