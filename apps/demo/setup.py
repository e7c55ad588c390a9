"""What `mlab_demo` sets up, step by step. Each step is idempotent."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from apps.training.services import datasource_sync
from mlabsite.roles import BUSINESS_DEVELOPERS, role_group
from mlabsite.tokens import api_token_replace

from .warehouse import build_demo_warehouse, load_demo_into_mysql

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "mlab-demo"
DEMO_TOKEN_NAME = "demo"


@dataclass
class DemoUser:
    username: str
    password: str
    token: str


@transaction.atomic
def demo_user_sync() -> DemoUser:
    """The demo business developer: staff (admin login), in the business group, with a new API token (tokens
    are stored as digests, so a rerun cannot show the old one: it revokes it and issues another)."""
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=DEMO_USERNAME, defaults={"is_staff": True})
    if created or not user.check_password(DEMO_PASSWORD):
        user.set_password(DEMO_PASSWORD)
    user.is_staff = True
    user.is_active = True
    user.save()
    user.groups.add(role_group(BUSINESS_DEVELOPERS))
    _, key = api_token_replace(user=user, name=DEMO_TOKEN_NAME)
    return DemoUser(DEMO_USERNAME, DEMO_PASSWORD, key)


DEMO_DATASOURCE = "demo"
DEMO_MYSQL_DATASOURCE = "demo-mysql"
DEMO_MYSQL_URL = "mysql://root@127.0.0.1:3306/mlab_warehouse"
# A data source's password variable must start with MLAB_DS_ (apps/training/datasources/policy.py).
DEMO_MYSQL_PASSWORD_ENV = "MLAB_DS_DEMO_MYSQL_PASSWORD"
_OLD_DEMO_MYSQL_PASSWORD_ENV = "MLAB_DEMO_MYSQL_PASSWORD"  # its name until data-source passwords were fenced


def demo_warehouse_sync(*, impressions: int = 200_000, path=None):
    """Build the DuckDB demo warehouse under settings.MLAB_WAREHOUSE_PATH if missing, and register it as the
    ``demo`` data source. Returns the warehouse summary."""
    path = path or settings.MLAB_WAREHOUSE_PATH
    summary = build_demo_warehouse(path, impressions=impressions)
    datasource_sync(
        name=DEMO_DATASOURCE,
        kind="duckdb",
        options={"path": str(path)},
        description="The demo warehouse (DuckDB): seller-union impressions, users and items.",
    )
    return summary


@transaction.atomic
def demo_mysql_sync(*, url: str = DEMO_MYSQL_URL, path=None) -> dict[str, int]:
    """Copy the demo warehouse into the MySQL/MariaDB database of ``url`` and register it as ``demo-mysql``.

    The password, if any, comes from the environment variable MLAB_DS_DEMO_MYSQL_PASSWORD, never from the URL.
    The source is validated first (its host must be one MLAB_DATASOURCE_HOSTS allows), so that nothing is sent
    to a host the server would refuse; a failed copy rolls its registration back.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb") or parts.password:
        raise ValueError(f"Expected mysql://user@host:port/database (password in {DEMO_MYSQL_PASSWORD_ENV}).")
    if _OLD_DEMO_MYSQL_PASSWORD_ENV in os.environ and DEMO_MYSQL_PASSWORD_ENV not in os.environ:
        raise ValueError(f"{_OLD_DEMO_MYSQL_PASSWORD_ENV} is now called {DEMO_MYSQL_PASSWORD_ENV}: rename it.")
    options: dict[str, Any] = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": parts.username or "root",
        "database": parts.path.lstrip("/") or "mlab_warehouse",
    }
    password = os.environ.get(DEMO_MYSQL_PASSWORD_ENV)
    datasource_sync(
        name=DEMO_MYSQL_DATASOURCE,
        kind="mysql",
        options=options,
        password_env=DEMO_MYSQL_PASSWORD_ENV if password is not None else "",
        description="The demo warehouse copied into MySQL/MariaDB (same rows as the DuckDB one).",
    )
    return load_demo_into_mysql(path or settings.MLAB_WAREHOUSE_PATH, password=password, **options)
