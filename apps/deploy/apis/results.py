"""``GET /api/v1/scenes/{scene}/results/?revision=&metric=``: the A/B results of a revision, for its owners.

Answered from the aggregated rows (see ``abtest.results``), never from raw events: a scene with ten million
exposures answers as fast as one with ten (a few rows per version and day).
"""

from __future__ import annotations

import re

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from mlab_client.contract import METRIC_PATTERN

from ..abtest.results import NoSuchRevision, scene_results
from .scenes import _SceneMixin

_METRIC = re.compile(METRIC_PATTERN)


class ResultsApi(_SceneMixin):
    """Per version: units, exposures, outcomes, rate and mean with 95% intervals, online AUC and log loss; per
    challenger against control: uplift with its interval, p-value, chance to beat control; the SRM check; the
    guardrail's state; what was counted apart; a daily series. ``revision`` defaults to the published one,
    ``metric`` to the guardrail's (else the one with the most outcomes)."""

    required_permissions = {"GET": ["deploy.view_scene"]}

    @extend_schema(
        parameters=[
            OpenApiParameter("revision", OpenApiTypes.INT, description="default: the published revision"),
            OpenApiParameter("metric", OpenApiTypes.STR, description="default: the guardrail's metric"),
        ],
        responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT},
    )
    def get(self, request, name: str):
        scene = self.get_scene()
        raw_revision = request.query_params.get("revision") or None
        metric = request.query_params.get("metric") or None
        errors = {}
        revision = None
        if raw_revision is not None:
            if raw_revision.isdigit() and int(raw_revision) >= 1:
                revision = int(raw_revision)
            else:
                errors["revision"] = ["A revision number (1 or more)."]
        if metric is not None and not _METRIC.fullmatch(metric):
            errors["metric"] = [f"A metric name matching {METRIC_PATTERN}."]
        if errors:
            raise serializers.ValidationError(errors)
        try:
            results = scene_results(scene=scene, revision=revision, metric=metric)
        except NoSuchRevision as exc:
            raise Http404(str(exc)) from None
        return Response(results.as_dict())
