"""API of the training app: data sources and their tables, run preview, and training runs."""

from .datasources import DataSourceListApi, DataSourceTablesApi
from .preview import RunPreviewApi
from .runs import RunCancelApi, RunDetailApi, RunListCreateApi, RunRetryApi

__all__ = [
    "DataSourceListApi",
    "DataSourceTablesApi",
    "RunCancelApi",
    "RunDetailApi",
    "RunListCreateApi",
    "RunPreviewApi",
    "RunRetryApi",
]
