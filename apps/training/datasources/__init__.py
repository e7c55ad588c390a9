"""Data source back ends: introspection (the allow-list) and streaming execution of the sample SQL.

``backend_for(datasource)`` gives the back end of a :class:`~apps.training.models.DataSource`. Execution
returns a :class:`SampleData` (column-typed numpy arrays); ``save_sample`` / ``load_sample`` give its file
form for the PAI path.
"""

from __future__ import annotations

from .base import Backend, Schema
from .duckdb_backend import DuckDBBackend
from .errors import BackendNotAvailable, DataSourceError, DataSourceUnavailable, QueryFailed, QueryTimeout
from .mysql_backend import MySQLBackend
from .remote import HiveBackend, MaxComputeBackend
from .sample_data import SampleColumns, SampleData, load_sample, save_sample
from .types import column_kind

BACKENDS: dict[str, type[Backend]] = {
    "duckdb": DuckDBBackend,
    "mysql": MySQLBackend,
    "maxcompute": MaxComputeBackend,
    "hive": HiveBackend,
}


def backend_for(datasource) -> Backend:
    """The back end of a DataSource row (or anything with name, kind, options and password_env)."""
    try:
        cls = BACKENDS[datasource.kind]
    except KeyError:
        raise DataSourceUnavailable(
            f"Data source {datasource.name!r} is of an unknown kind {datasource.kind!r}."
        ) from None
    return cls(name=datasource.name, options=datasource.options or {}, password_env=datasource.password_env or "")


def dialect_of(kind: str) -> str:
    """The sqlglot dialect the SQL of a data source of this kind is rendered in."""
    return BACKENDS[kind].dialect


__all__ = [
    "DataSourceError",
    "DataSourceUnavailable",
    "Backend",
    "BackendNotAvailable",
    "QueryFailed",
    "QueryTimeout",
    "SampleColumns",
    "SampleData",
    "Schema",
    "column_kind",
    "dialect_of",
    "backend_for",
    "load_sample",
    "save_sample",
]
