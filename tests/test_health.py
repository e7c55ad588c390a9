"""/healthz reports the database and Redis."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_healthz_is_public_and_reports_both_services_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "up", "redis": "up"}


def test_healthz_is_503_when_redis_is_down(client, settings):
    # Changing CACHES through the settings fixture makes Django drop its cache connections.
    default = settings.CACHES["default"]
    settings.CACHES = {
        "default": {
            **default,
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {**default["OPTIONS"], "SOCKET_CONNECT_TIMEOUT": 0.2},
        }
    }
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "up", "redis": "down"}
