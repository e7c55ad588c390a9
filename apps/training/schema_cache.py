"""Data sources' allow-lists (their introspected tables and columns) and their tables' profiles (row counts,
the partition column's date range, integer columns with few values), cached in Redis for a short while.

Both the selectors that read them and the service that refreshes them go through here; the key changes with
the connection settings, so an edited source is introspected afresh.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Any

from django.core.cache import cache

from .datasources import Backend, DataSourceError, Schema, backend_for
from .models import DataSource
from .sql import DIALECTS, render
from .sql.profile import FEW_VALUES_MAX, distinct_count_query, integer_columns, partition_column_of, table_count_query

SCHEMA_CACHE_SECONDS = 300  # the refresh action replaces it at once
PROFILE_TIMEOUT_SECONDS = 30  # per query; a table that takes longer shows why instead of its numbers

# table → {"rows": int | None, "partition_column": str | None, "first_day": str | None, "last_day": str | None,
#          "few_values": [column…], "error": str | None}
Profile = dict[str, dict[str, Any]]


def schema_cache_key(datasource: DataSource) -> str:
    settings = json.dumps([datasource.kind, datasource.options, datasource.password_env], sort_keys=True)
    digest = hashlib.sha256(settings.encode()).hexdigest()[:16]
    return f"datasource:{datasource.pk}:{digest}:schema"


def schema_cached(datasource: DataSource) -> Schema | None:
    return cache.get(schema_cache_key(datasource))


def schema_introspect(datasource: DataSource) -> Schema:
    """Introspect the source now and cache the result. Raises a DataSourceError when it cannot."""
    schema = backend_for(datasource).introspect()
    cache.set(schema_cache_key(datasource), schema, SCHEMA_CACHE_SECONDS)
    return schema


def profile_cache_key(datasource: DataSource) -> str:
    return schema_cache_key(datasource).removesuffix(":schema") + ":profile"


def profile_cached(datasource: DataSource) -> Profile | None:
    return cache.get(profile_cache_key(datasource))


def profile_compute(datasource: DataSource, schema: Schema) -> Profile:
    """Profile every table of ``schema`` on the source now (two small generated queries per table) and cache
    the result. A table whose queries fail carries the reason in its ``error``; nothing is raised."""
    backend = backend_for(datasource)
    dialect = DIALECTS[datasource.kind]
    profile: Profile = {}
    for table, columns in schema.items():
        partition = partition_column_of(columns)
        entry: dict[str, Any] = {
            "rows": None,
            "partition_column": partition,
            "first_day": None,
            "last_day": None,
            "few_values": [],
            "error": None,
        }
        if not backend.executable:
            entry["error"] = "Not readable from this machine (the SQL runs with the PAI job)."
        else:
            try:
                _profile_table(backend, dialect, table, columns, partition, entry)
            except DataSourceError as exc:
                entry["error"] = str(exc)
        profile[table] = entry
    cache.set(profile_cache_key(datasource), profile, SCHEMA_CACHE_SECONDS)
    return profile


def _profile_table(
    backend: Backend, dialect: str, table: str, columns: dict[str, str], partition: str | None, entry: dict
) -> None:
    row = backend.fetch_one(
        render(table_count_query(table, partition_column=partition), dialect, pretty=False),
        timeout=PROFILE_TIMEOUT_SECONDS,
    )
    entry["rows"] = int(row[0]) if row and row[0] is not None else 0
    if partition and len(row) == 3:
        entry["first_day"], entry["last_day"] = _day(row[1]), _day(row[2])
    integers = integer_columns(columns)
    if integers and entry["rows"]:
        counts = backend.fetch_one(
            render(distinct_count_query(table, integers), dialect, pretty=False), timeout=PROFILE_TIMEOUT_SECONDS
        )
        entry["few_values"] = [
            c for c, n in zip(integers, counts, strict=False) if n is not None and n <= FEW_VALUES_MAX
        ]


def _day(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time() else value.isoformat(sep=" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)
