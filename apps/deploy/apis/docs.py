"""The OpenAPI description of the two client-facing endpoints that are plain Django views, not DRF views:
``GET /api/v1/config/{scene}/`` and ``GET /api/v1/scenes/{scene}/versions/{v}/artifact/``.

They stay plain views (sync under WSGI, async under ASGI, no DRF machinery on the hot path: see
``config.py``, ``artifacts.py``, ``bench/poll.py``). These classes are never routed: they only carry the
description, and ``mlabsite.openapi.document_plain_views`` adds them to the schema at the real routes.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView

from mlabsite.api_access import ApiTokenAuthentication

from .config import WAIT_MAX_SECONDS

_REFUSED = inline_serializer("Refusal", fields={"detail": serializers.CharField()})
_WAIT_REFUSED = inline_serializer(  # a 400 names its field, as DRF's validation errors do
    "ConfigWaitRefusal", fields={"wait": serializers.ListField(child=serializers.CharField())}
)
_AUTH = (
    "`Authorization: Token <key>`: a client token of the scene (`mlc_…`, made in the admin or by `mlab_demo`), or "
    "the API token of one of the scene's owners."
)

ConfigSerializer = inline_serializer(
    "ClientConfig",
    fields={
        "scene": serializers.CharField(),
        "revision": serializers.IntegerField(help_text="The published revision; it only grows."),
        "salt": serializers.CharField(help_text="Mixed into a unit's bucket: sha256(f'{salt}:{unit_id}')."),
        "buckets": serializers.IntegerField(help_text="10000."),
        "allocation": serializers.ListField(
            child=serializers.ListField(child=serializers.IntegerField(), min_length=3, max_length=3),
            help_text="[start, end, version] bucket ranges, half-open, covering 0..buckets.",
        ),
        "versions": inline_serializer(
            "ClientConfigVersion",
            fields={
                "version": serializers.IntegerField(),
                "sha256": serializers.CharField(),
                "size": serializers.IntegerField(help_text="Bytes."),
                "format": serializers.CharField(help_text="onnx"),
                "url": serializers.CharField(help_text="The artifact's path on this server."),
            },
            many=True,
        ),
        "overrides": serializers.DictField(
            child=serializers.IntegerField(), help_text="Unit id → version, whatever the split (gray release)."
        ),
    },
)


class ConfigApiDoc(APIView):
    """Documentation only (see the module doc)."""

    authentication_classes = [ApiTokenAuthentication]  # the Authorization header only: no session

    @extend_schema(
        operation_id="config_retrieve",
        tags=["config"],
        summary="The config a client polls",
        description=(
            "What `mlab_client` polls: the scene's published revision, the bucket allocation of its A/B split, the "
            "versions to load and the pinned units. The `ETag` header identifies the revision: send it back in "
            "`If-None-Match` to get 304 when nothing changed. With `?wait=N` and a matching `If-None-Match`, the "
            f"request is held until a new revision is published or N seconds pass (then 304). {_AUTH}"
        ),
        parameters=[
            OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, description="The scene's name."),
            OpenApiParameter(
                "wait",
                OpenApiTypes.NUMBER,
                OpenApiParameter.QUERY,
                description=f"Seconds to hold the request for a new revision (0 to {WAIT_MAX_SECONDS}); needs "
                "If-None-Match.",
            ),
            OpenApiParameter(
                "If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, description="The ETag last received."
            ),
        ],
        responses={
            200: OpenApiResponse(ConfigSerializer, description="The published config; its ETag in the header."),
            304: OpenApiResponse(description="Not modified: the revision of If-None-Match is still the published one."),
            400: OpenApiResponse(_WAIT_REFUSED, description="`wait` is not a number of seconds in range."),
            401: OpenApiResponse(_REFUSED, description="No token, or an unknown one."),
            403: OpenApiResponse(_REFUSED, description="The token may not read this scene."),
            404: OpenApiResponse(_REFUSED, description="No such scene, or nothing published yet."),
        },
    )
    def get(self, request, name: str):  # pragma: no cover - never routed
        raise NotImplementedError


class ArtifactApiDoc(APIView):
    """Documentation only (see the module doc)."""

    authentication_classes = [ApiTokenAuthentication]

    @extend_schema(
        operation_id="scenes_versions_artifact_retrieve",
        tags=["scenes"],
        summary="A model version's bytes",
        description=(
            "The model file (ONNX) of a version, streamed. The `ETag` is the file's sha256 (quoted): a client checks "
            "the bytes against it, and sends it back in `If-None-Match` to get 304. Every chunk is checked against "
            f"the database's checksum before it is sent. {_AUTH}"
        ),
        parameters=[
            OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, description="The scene's name."),
            OpenApiParameter("version", OpenApiTypes.INT, OpenApiParameter.PATH, description="The version number."),
            OpenApiParameter(
                "If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, description="The sha256 already held."
            ),
        ],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The model's bytes; ETag: its sha256."
            ),
            304: OpenApiResponse(description="Not modified: the client holds these bytes."),
            401: OpenApiResponse(_REFUSED, description="No token, or an unknown one."),
            403: OpenApiResponse(_REFUSED, description="The token may not read this scene."),
            404: OpenApiResponse(_REFUSED, description="No such scene or version."),
            503: OpenApiResponse(_REFUSED, description="The stored copy failed its checksum; it is not served."),
        },
    )
    def get(self, request, name: str, version: int):  # pragma: no cover - never routed
        raise NotImplementedError
