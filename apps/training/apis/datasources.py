"""GET /datasources/ and /datasources/{name}/tables/. No response carries a secret or connection details."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from ..datasources import DataSourceError, backend_for, dialect_of
from ..models import DataSource
from ..selectors import datasource_get, datasource_list, datasource_schema, schema_tables
from ..services import datasource_schema_refresh


class DataSourceSerializer(serializers.ModelSerializer):
    dialect = serializers.SerializerMethodField()
    executable = serializers.SerializerMethodField()

    class Meta:
        model = DataSource
        # Connection options and the password variable stay server-side.
        fields = ["name", "kind", "description", "dialect", "executable"]

    def get_dialect(self, datasource) -> str:
        return dialect_of(datasource.kind)

    def get_executable(self, datasource) -> bool:
        """False for kinds this machine can only generate SQL for (MaxCompute, Hive)."""
        return backend_for(datasource).executable


class DataSourceListApi(generics.ListAPIView):
    required_permissions = {"GET": ["training.view_datasource"]}
    serializer_class = DataSourceSerializer

    def get_queryset(self):
        return datasource_list()


class DataSourceTablesApi(APIView):
    required_permissions = {"GET": ["training.view_datasource"]}

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "refresh",
                OpenApiTypes.BOOL,
                description="Introspect now, not from the cache (needs the permission to change data sources).",
            )
        ],
        responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT, 403: OpenApiTypes.OBJECT},
        summary="Tables of a data source, with their columns and types",
    )
    def get(self, request, name: str):
        try:
            datasource = datasource_get(name=name)
        except DataSource.DoesNotExist:
            raise Http404("No such data source.") from None
        refresh = request.query_params.get("refresh", "").lower() in ("1", "true", "yes")
        try:
            if refresh:  # PermissionDenied (403) without the permission to change data sources
                schema = datasource_schema_refresh(datasource=datasource, user=request.user)
            else:
                schema = datasource_schema(datasource=datasource)
        except DataSourceError as exc:
            return Response({"datasource": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        return Response({"datasource": datasource.name, "tables": schema_tables(schema)})
