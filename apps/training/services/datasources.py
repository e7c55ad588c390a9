"""Writes of the training app: data sources and their cached allow-list."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

from ..datasources import Schema
from ..models import DataSource
from ..schema_cache import profile_compute, schema_introspect


@transaction.atomic
def datasource_create(
    *,
    name: str,
    kind: str,
    options: dict[str, Any] | None = None,
    password_env: str = "",
    description: str = "",
    owner=None,
) -> DataSource:
    """Create a data source. ``options`` hold connection settings only; a password is named by
    ``password_env`` (an environment variable) and never stored."""
    datasource = DataSource(
        name=name,
        kind=kind,
        options=options or {},
        password_env=password_env,
        description=description,
        owner=owner,
    )
    datasource.full_clean()
    datasource.save()
    return datasource


@transaction.atomic
def datasource_sync(*, name: str, kind: str, options: dict[str, Any], description: str = "", password_env: str = ""):
    """Create or update the data source ``name`` with these settings (idempotent; used by mlab_demo)."""
    datasource = DataSource.objects.select_for_update().filter(name=name).first()
    if datasource is None:
        return datasource_create(
            name=name, kind=kind, options=options, description=description, password_env=password_env
        )
    datasource.kind, datasource.options = kind, options
    datasource.description, datasource.password_env = description, password_env
    datasource.full_clean()
    datasource.save(update_fields=["kind", "options", "description", "password_env"])
    return datasource


def datasource_schema_refresh(*, datasource: DataSource, user) -> Schema:
    """Introspect the source now and replace its cached allow-list and its tables' profile. Raises a
    DataSourceError when it cannot be introspected (a table that cannot be profiled says why in the profile).

    Only a user who may change data sources may make Mlab connect on demand (PermissionDenied otherwise):
    reading the cached allow-list needs only the view permission (selectors.datasource_schema).
    """
    if not user.has_perm(f"{DataSource._meta.app_label}.change_datasource"):
        raise PermissionDenied("Refreshing a data source's schema needs the permission to change data sources.")
    schema = schema_introspect(datasource)
    profile_compute(datasource, schema)
    return schema
