"""Reads of data sources: their allow-list (introspected, cached in Redis) and samples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from .datasources import Schema, backend_for, column_kind
from .models import DataSource, TrainingRun, TrainingRunEvent
from .schema_cache import Profile, profile_cached, profile_compute, schema_cached, schema_introspect
from .sql import SchemaAllowList, count_query, limited, render


def datasource_list() -> QuerySet[DataSource]:
    """Every data source: all authenticated users may read from them (their secrets stay in the environment)."""
    return DataSource.objects.all()


def datasource_get(*, name: str) -> DataSource:
    """Raises DataSource.DoesNotExist."""
    return DataSource.objects.get(name=name)


def datasource_schema(*, datasource: DataSource) -> Schema:
    """The allow-list {table: {column: type}}: from the cache, else introspected and cached for a short while.

    Raises a DataSourceError when the source must be introspected and cannot be.
    """
    cached = schema_cached(datasource)
    return cached if cached is not None else schema_introspect(datasource)


def datasource_profile(*, datasource: DataSource) -> Profile:
    """Each table's row count, partition column and its first and last day, and its integer columns with few
    distinct values: from the cache, else computed on the source with generated SQL and cached like the schema.
    A table that cannot be profiled says why in its ``error``. Raises a DataSourceError when the schema cannot
    be read."""
    cached = profile_cached(datasource)
    return cached if cached is not None else profile_compute(datasource, datasource_schema(datasource=datasource))


def datasource_allowlist(*, datasource: DataSource, profile: Profile | None = None) -> SchemaAllowList:
    """The source's allow-list, with the integer columns its profile found to have few values."""
    few = {(table, column) for table, entry in (profile or {}).items() for column in entry.get("few_values") or []}
    return SchemaAllowList(datasource_schema(datasource=datasource), few_values=frozenset(few))


def schema_tables(schema) -> list[dict]:
    """The allow-list as the API and the Launch page show it: tables with columns, types and kinds."""
    return [
        {
            "name": table,
            "columns": [{"name": c, "type": t, "kind": column_kind(t)} for c, t in columns.items()],
        }
        for table, columns in schema.items()
    ]


@dataclass(frozen=True)
class SamplePreview:
    columns: list[dict[str, str]]
    rows: list[list[Any]]
    row_count: int


def sample_preview(*, prepared) -> SamplePreview:
    """The first ``preview_rows`` rows of a prepared launch's sample and the sample's row count."""
    engine = backend_for(prepared.datasource)
    sample = prepared.sample_params
    timeout, token = sample["timeout_seconds"], prepared.access_token
    head = engine.fetch(
        render(limited(prepared.query.expression, sample["preview_rows"]), prepared.dialect, pretty=False),
        columns=prepared.query.columns,
        chunk_rows=sample["preview_rows"],
        timeout=timeout,
        access_token=token,
    )
    count = engine.count(
        render(count_query(prepared.query.expression), prepared.dialect, pretty=False),
        timeout=timeout,
        access_token=token,
    )
    return SamplePreview(prepared.query.columns.describe(), head.rows(), count)


def sample_fetch(*, prepared):
    """The whole sample of a prepared launch as SampleData (streamed in chunks of chunk_rows)."""
    sample = prepared.sample_params
    return backend_for(prepared.datasource).fetch(
        render(prepared.query.expression, prepared.dialect, pretty=False),
        columns=prepared.query.columns,
        chunk_rows=sample["chunk_rows"],
        timeout=sample["timeout_seconds"],
        access_token=prepared.access_token,
    )


def training_run_list(*, user) -> QuerySet[TrainingRun]:
    """Runs ``user`` may see and act on: their own (superusers see every run). Every door asks this: the API,
    the admin, and the deploy app when a run is registered as a version."""
    qs = TrainingRun.objects.select_related("template", "datasource", "owner")
    return qs if user.is_superuser else qs.filter(owner=user)


def training_run_may_describe(*, run: TrainingRun, user) -> bool:
    """Whether ``user`` may name the run and write its note: its owner, or a superuser."""
    return user.is_superuser or run.owner_id == user.pk


def training_run_get(*, user, run_id: int) -> TrainingRun:
    """Raises TrainingRun.DoesNotExist when the run does not exist or is not ``user``'s."""
    return training_run_list(user=user).get(pk=run_id)


def training_run_events(*, run: TrainingRun, limit: int) -> list[TrainingRunEvent]:
    """The first ``limit`` lines of the run's log, in order."""
    return list(run.events.order_by("id")[:limit])
