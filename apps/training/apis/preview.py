"""POST /runs/preview/: the generated SQL, the payload and the first rows of the sample. Creates nothing."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.templates import selectors as template_selectors
from apps.templates.models import AlgorithmTemplate

from ..datasources import BackendNotAvailable, DataSourceError, QueryTimeout
from ..launch import ENGINES, prepare_launch
from ..models import DataSource
from ..selectors import datasource_get, sample_preview


class RunInputSerializer(serializers.Serializer):
    """The body of run creation and of its preview."""

    template = serializers.SlugField()
    params = serializers.DictField(child=serializers.JSONField(), required=False, default=dict)
    engine = serializers.ChoiceField(choices=ENGINES, default="local")
    datasource = serializers.SlugField()


def resolve_run_input(request):
    """Validated body → (template, datasource, params, engine); raises ValidationError naming the field."""
    body = RunInputSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    data = body.validated_data
    errors = {}
    try:
        template = template_selectors.template_get(user=request.user, slug=data["template"])
    except AlgorithmTemplate.DoesNotExist:
        errors["template"] = ["No such template."]
    try:
        datasource = datasource_get(name=data["datasource"])
    except DataSource.DoesNotExist:
        errors["datasource"] = ["No such data source."]
    if errors:
        raise serializers.ValidationError(errors)
    return template, datasource, data["params"], data["engine"]


class RunPreviewApi(APIView):
    required_permissions = {"POST": ["training.add_trainingrun"]}

    @extend_schema(
        request=RunInputSerializer,
        responses={
            200: OpenApiTypes.OBJECT,
            400: OpenApiTypes.OBJECT,
        },
        examples=[
            OpenApiExample(
                "Preview the click sample",
                value={
                    "template": "binary-lr",
                    "datasource": "demo",
                    "engine": "local",
                    "params": {"sample": {"date_from": "2026-10-01", "date_to": "2026-10-07", "preview_rows": 5}},
                },
            )
        ],
        summary="Preview a run: SQL, payload, sample columns, first rows and row count",
    )
    def post(self, request):
        template, datasource, params, engine = resolve_run_input(request)
        prepared = prepare_launch(template=template, params=params, datasource=datasource, engine=engine)
        body: dict[str, Any] = {
            "sql": prepared.sql,
            "dialect": prepared.dialect,
            "payload": prepared.payload,
            "params": prepared.masked,
            "columns": prepared.query.columns.describe(),
            "rows": None,
            "row_count": None,
        }
        try:
            preview = sample_preview(prepared=prepared)
        except BackendNotAvailable as exc:
            body["notice"] = str(exc)  # SQL generation is the whole preview for MaxCompute and Hive
            return Response(body)
        except QueryTimeout as exc:
            node = prepared.sample_node
            return Response({"params": {node: {"timeout_seconds": [str(exc)]}}}, status=status.HTTP_400_BAD_REQUEST)
        except DataSourceError as exc:
            return Response({"datasource": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        body.update(rows=preview.rows, row_count=preview.row_count)
        return Response(body)
