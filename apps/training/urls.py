from django.urls import path

from . import apis

urlpatterns = [
    path("datasources/", apis.DataSourceListApi.as_view(), name="datasource-list"),
    path("datasources/<slug:name>/tables/", apis.DataSourceTablesApi.as_view(), name="datasource-tables"),
    path("runs/preview/", apis.RunPreviewApi.as_view(), name="run-preview"),
]
