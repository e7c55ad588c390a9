"""API of the training app: data sources and their tables, and the run preview."""

from .datasources import DataSourceListApi, DataSourceTablesApi
from .preview import RunPreviewApi

__all__ = ["DataSourceListApi", "DataSourceTablesApi", "RunPreviewApi"]
