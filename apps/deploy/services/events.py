"""Taking in a batch of events: checked against the contract, appended to the scene's stream, aggregation asked for.

What ``events_accept`` refuses, the events door answers: ``BatchTooLarge`` with 413 (nothing kept: the SDK
splits the batch), ``BatchInvalid`` with 400 naming the fields (``contract.batch_errors``' shape), and
``event_stream.BacklogFull`` with 503 (retried by the SDK under the same batch id). A batch id seen before is
accepted again: the aggregation counts each id once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from redis import Redis
from redis.exceptions import RedisError

from mlab_client import contract
from mlabsite.locks import redis_connection

from ..queue import enqueue_events_aggregate
from .event_stream import stream_append

logger = logging.getLogger(__name__)


class BatchTooLarge(Exception):
    """More events or bytes than the server takes in one batch (413)."""


class BatchInvalid(Exception):
    """The batch breaks the contract (400): ``errors`` is the body, naming the fields."""

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__("the batch breaks the events contract")
        self.errors = errors


@dataclass(frozen=True)
class Accepted:
    batch: str
    events: int


def max_batch_events() -> int:
    """The most events the server takes in one batch: the setting, never above the contract's maximum."""
    return min(int(settings.MLAB_EVENTS_MAX_BATCH_EVENTS), contract.MAX_BATCH_EVENTS)


def events_accept(*, scene_id: int, scene_name: str, document: Any, connection: Redis | None = None) -> Accepted:
    """Check a batch (``{"batch": id, "events": [...]}``, parsed) and append it to the scene's stream, in the
    entry format the SDK's Redis mode writes; ask for an aggregation run when none is pending. Raises
    BatchTooLarge, BatchInvalid, event_stream.BacklogFull, or redis.RedisError."""
    events = document.get("events") if isinstance(document, dict) else None
    if isinstance(events, list) and len(events) > max_batch_events():
        raise BatchTooLarge(f"at most {max_batch_events()} events per batch; got {len(events)}")
    errors = contract.batch_errors(document)
    if errors:
        raise BatchInvalid(errors)
    assert isinstance(document, dict) and isinstance(events, list)  # batch_errors checked both
    events_json = _events_json(events)
    if len(events_json) > contract.MAX_BATCH_BYTES:
        raise BatchTooLarge(f"at most {contract.MAX_BATCH_BYTES} bytes of events per batch")
    connection = connection or redis_connection()
    asked = stream_append(
        connection, scene_name=scene_name, scene_id=scene_id, batch_id=document["batch"], events_json=events_json
    )
    if asked:
        try:
            enqueue_events_aggregate(scene_id)
        except RedisError as exc:  # the batch is in the stream: the worker's sweep asks again
            logger.warning("could not enqueue the aggregation of scene %s: %s", scene_name, exc)
    return Accepted(batch=document["batch"], events=len(events))


def _events_json(events: list) -> str:
    return json.dumps(events, separators=(",", ":"), allow_nan=False)
