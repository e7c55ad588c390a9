"""Building A/B events for the tests: exposures and outcomes as the SDK sends them, posted or added to the stream."""

from __future__ import annotations

import json
import time
import uuid

from mlab_client import contract

DAY = 86_400.0
T0 = 1_790_000_000.0  # a fixed moment (2026-09-21, 14:13 UTC): days and windows do not depend on when tests run


def exposure(unit: str, version: int, *, ts: float = T0, score: float | None = 0.5, revision: int = 1) -> dict:
    event = {"type": "exposure", "unit_id": unit, "revision": revision, "version": version, "ts": ts}
    if score is not None:
        event["score"] = score
    return event


def outcome(
    unit: str,
    *,
    value: float = 1.0,
    metric: str = "click",
    ts: float = T0 + 60,
    revision: int | None = 1,
    version: int | None = None,
) -> dict:
    return {
        "type": "outcome",
        "unit_id": unit,
        "revision": revision,
        "version": version,
        "metric": metric,
        "value": value,
        "ts": ts,
    }


def batch(events: list[dict], batch_id: str | None = None) -> dict:
    return {"batch": batch_id or uuid.uuid4().hex, "events": events}


def events_url(scene) -> str:
    return f"/api/v1/scenes/{scene.name}/events/"


def post(client, scene, events: list[dict], batch_id: str | None = None):
    return client.post(events_url(scene), batch(events, batch_id), format="json")


def xadd(redis, scene, events: list[dict], batch_id: str | None = None) -> str:
    """Add a batch to the scene's stream as the SDK's Redis mode does."""
    fields = {
        "batch": batch_id or uuid.uuid4().hex,
        "format": contract.EVENTS_FORMAT_VERSION,
        "events": json.dumps(events),
    }
    return redis.xadd(contract.events_stream_key(scene.name), fields).decode()


def now() -> float:
    return time.time()
