"""A run's secret parameters between its launch and its execution.

They are never stored with the run (its params are masked; its payload excludes them). The job that executes
the run needs them once, to open the data source session, so they wait in Redis (JSON, with a TTL) and are
deleted as soon as the sample has been read. A relaunch starts without them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django_redis import get_redis_connection


def _key(run_id: int) -> str:
    return f"mlab:run:{run_id}:secrets"


def run_secrets_stash(run_id: int, secrets: Mapping[str, Mapping[str, Any]]) -> None:
    if secrets:
        get_redis_connection("default").set(_key(run_id), json.dumps(secrets), ex=settings.MLAB_RUN_SECRETS_SECONDS)


def run_secrets_get(run_id: int) -> dict[str, dict[str, Any]]:
    raw = get_redis_connection("default").get(_key(run_id))
    return json.loads(raw) if raw else {}


def run_secrets_forget(run_id: int) -> None:
    get_redis_connection("default").delete(_key(run_id))
