"""Data sources' allow-lists (their introspected tables and columns), cached in Redis for a short while.

Both the selector that reads a source's schema and the service that refreshes it go through here; the key
changes with the connection settings, so an edited source is introspected afresh.
"""

from __future__ import annotations

import hashlib
import json

from django.core.cache import cache

from .datasources import Schema, backend_for
from .models import DataSource

SCHEMA_CACHE_SECONDS = 300  # the refresh action replaces it at once


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
