"""Data source engines: introspection (the allow-list) and streaming execution of the sample SQL.

``engine_for(datasource)`` gives the engine of a :class:`~apps.training.models.DataSource`. Execution
returns a :class:`SampleData` (column-typed numpy arrays); ``save_sample`` / ``load_sample`` give its file
form for the PAI path.
"""

from __future__ import annotations

from .base import Engine, Schema
from .duckdb_engine import DuckDBEngine
from .errors import DataSourceError, DataSourceUnavailable, EngineNotAvailable, QueryFailed, QueryTimeout
from .mysql_engine import MySQLEngine
from .remote import HiveEngine, MaxComputeEngine
from .sample_data import SampleColumns, SampleData, load_sample, save_sample
from .types import column_kind

ENGINES: dict[str, type[Engine]] = {
    "duckdb": DuckDBEngine,
    "mysql": MySQLEngine,
    "maxcompute": MaxComputeEngine,
    "hive": HiveEngine,
}


def engine_for(datasource) -> Engine:
    """The engine of a DataSource row (or anything with name, engine, options and password_env)."""
    try:
        cls = ENGINES[datasource.engine]
    except KeyError:
        raise DataSourceUnavailable(
            f"Data source {datasource.name!r} has an unknown engine {datasource.engine!r}."
        ) from None
    return cls(name=datasource.name, options=datasource.options or {}, password_env=datasource.password_env or "")


def dialect_of(engine: str) -> str:
    """The sqlglot dialect the SQL of a data source engine is rendered in."""
    return ENGINES[engine].dialect


__all__ = [
    "DataSourceError",
    "DataSourceUnavailable",
    "Engine",
    "EngineNotAvailable",
    "QueryFailed",
    "QueryTimeout",
    "SampleColumns",
    "SampleData",
    "Schema",
    "column_kind",
    "dialect_of",
    "engine_for",
    "load_sample",
    "save_sample",
]
