from django.urls import path

from . import apis

urlpatterns = [
    path("datasources/", apis.DataSourceListApi.as_view(), name="datasource-list"),
    path("datasources/<slug:name>/tables/", apis.DataSourceTablesApi.as_view(), name="datasource-tables"),
    path("runs/", apis.RunListCreateApi.as_view(), name="run-list"),
    path("runs/preview/", apis.RunPreviewApi.as_view(), name="run-preview"),
    path("runs/<int:pk>/", apis.RunDetailApi.as_view(), name="run-detail"),
    path("runs/<int:pk>/cancel/", apis.RunCancelApi.as_view(), name="run-cancel"),
    path("runs/<int:pk>/retry/", apis.RunRetryApi.as_view(), name="run-retry"),
]
