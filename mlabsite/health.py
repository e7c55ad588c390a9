"""/healthz: is the database reachable, is Redis reachable."""

from __future__ import annotations

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_redis import get_redis_connection


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:  # any failure means "down"; the reason is not for anonymous callers
        return False


def _redis_ok() -> bool:
    try:
        return bool(get_redis_connection("default").ping())
    except Exception:
        return False


@never_cache
@require_GET
def healthz(request):
    state = {"database": _database_ok(), "redis": _redis_ok()}
    ok = all(state.values())
    body = {"status": "ok" if ok else "unavailable", **{k: "up" if v else "down" for k, v in state.items()}}
    return JsonResponse(body, status=200 if ok else 503)
