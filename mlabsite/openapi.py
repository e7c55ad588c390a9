"""What the OpenAPI schema (``/api/schema/``, ``manage.py spectacular``) adds to the DRF views it finds by itself:
the public routes served by plain Django views, described by documentation-only APIView classes.

The routes themselves are not touched, so documenting them costs their requests nothing; the hook below only
adds entries to the generator's list of endpoints, at the paths ``mlabsite/urls.py`` serves them on. A test
(``tests/test_openapi.py``) checks that every public route is in the schema.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from apps.deploy.apis.docs import ArtifactApiDoc, ConfigApiDoc

HEALTH = inline_serializer(
    "Health",
    fields={
        "status": serializers.CharField(help_text="ok, or unavailable"),
        "database": serializers.CharField(help_text="up, or down"),
        "redis": serializers.CharField(help_text="up, or down"),
    },
)


class HealthApiDoc(APIView):
    """Documentation only: ``GET /healthz`` is ``mlabsite.health.healthz``."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="healthz",
        tags=["health"],
        summary="Are the database and Redis reachable",
        description="No authentication. 200 when both answer, 503 when either does not.",
        responses={
            (200, "application/json"): OpenApiResponse(HEALTH, description="Both are up."),
            (503, "application/json"): OpenApiResponse(HEALTH, description="The database or Redis is down."),
        },
    )
    def get(self, request):  # pragma: no cover - never routed
        raise NotImplementedError


# (path as the schema shows it, the route as urls.py declares it, the documentation view)
PLAIN_VIEWS = [
    ("/healthz", "healthz", HealthApiDoc),
    ("/api/v1/config/{name}/", "api/v1/config/<slug:name>/", ConfigApiDoc),
    (
        "/api/v1/scenes/{name}/versions/{version}/artifact/",
        "api/v1/scenes/<slug:name>/versions/<int:version>/artifact/",
        ArtifactApiDoc,
    ),
]


def document_plain_views(endpoints):
    """drf-spectacular's PREPROCESSING_HOOKS entry: the plain views' documentation at their routes."""
    known = {(path, method) for path, _, method, _ in endpoints}
    extra = [(path, route, "GET", view.as_view()) for path, route, view in PLAIN_VIEWS if (path, "GET") not in known]
    return [*endpoints, *extra]
