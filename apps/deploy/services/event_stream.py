"""A scene's Redis stream of event batches: how the events door appends to it and the aggregation consumes it.

One stream per scene (``contract.events_stream_key``), one entry per batch, in the entry format the SDK's Redis
mode writes (``{"batch": id, "format": "1", "events": JSON array}``), so both paths meet in one stream. The
aggregation reads it through one consumer group (``GROUP``), created at id 0 so that entries added before the
group existed are read too.

- An entry is acknowledged (XACK) only after the database transaction that counted it committed, and is then
  deleted (XDEL): the stream holds only what is still to be counted, so its length is the backlog.
- ``MAXLEN ~`` bounds every append (the SDK's and ours). The events door also refuses to append once the
  backlog reaches ``MLAB_EVENTS_STREAM_LIMIT`` entries (503, which the SDK retries with backoff), below that
  bound, so that trimming, which would drop entries not yet counted, is a last resort that does not happen
  in normal operation.
- Entries delivered to a consumer that died stay pending in the group; the next aggregation run claims them
  (XAUTOCLAIM) once idle for ``CLAIM_IDLE_SECONDS``.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

from django.conf import settings
from redis import Redis
from redis.exceptions import ResponseError

from mlab_client import contract

GROUP = "mlab-aggregation"
CLAIM_IDLE_SECONDS = 15.0  # longer than the aggregation lock's timeout: a live holder renews its lock first
REQUEST_TTL_SECONDS = 30  # an aggregation request whose job was lost expires, and the next append asks again
_REQUEST_PREFIX = "mlab:events:aggregate-requested:"

# Append unless the backlog is at the limit; ask for an aggregation when none is pending. Replies
# {1 if this call asked for one else 0, entry id}, or {-1, ""} when the backlog is full.
_APPEND = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
    return {-1, ''}
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'batch', ARGV[3], 'format', ARGV[4],
                      'events', ARGV[5])
local asked = redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[6]))
if asked then
    return {1, id}
end
return {0, id}
"""


class BacklogFull(Exception):
    """The scene's stream holds ``MLAB_EVENTS_STREAM_LIMIT`` entries not yet counted: try again later."""


@dataclass(frozen=True)
class StreamEntry:
    """One entry as read: its id and fields (None when the entry was trimmed while it was pending)."""

    entry_id: str
    fields: dict[bytes, bytes] | None


def stream_key(scene_name: str) -> str:
    return contract.events_stream_key(scene_name)


def request_key(scene_id: int) -> str:
    return f"{_REQUEST_PREFIX}{scene_id}"


def stream_limit() -> int:
    return int(settings.MLAB_EVENTS_STREAM_LIMIT)


def stream_append(connection: Redis, *, scene_name: str, scene_id: int, batch_id: str, events_json: str) -> bool:
    """Append one batch to the scene's stream. Returns True when this call asked for an aggregation (the caller
    enqueues it); raises BacklogFull when the backlog is at the limit (nothing appended)."""
    asked, _ = connection.eval(
        _APPEND,
        2,
        stream_key(scene_name),
        request_key(scene_id),
        stream_limit(),
        max(stream_limit(), contract.EVENTS_STREAM_MAXLEN),
        batch_id,
        contract.EVENTS_FORMAT_VERSION,
        events_json,
        REQUEST_TTL_SECONDS,
    )
    if int(asked) < 0:
        raise BacklogFull(f"{stream_limit()} batches are waiting to be counted")
    return int(asked) == 1


def consumer_name() -> str:
    """A consumer name of its own for each aggregation run: host, process and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SceneStream:
    """The consumer side of one scene's stream."""

    def __init__(self, connection: Redis, scene_name: str) -> None:
        self.connection = connection
        self.key = stream_key(scene_name)
        self.dead_key = f"{self.key}:dead"

    def ensure_group(self) -> None:
        try:
            self.connection.xgroup_create(self.key, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read_new(self, consumer: str, count: int) -> list[StreamEntry]:
        """Entries never delivered to any consumer of the group, oldest first (they become pending to us)."""
        try:
            reply = self.connection.xreadgroup(GROUP, consumer, {self.key: ">"}, count=count)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):  # Redis restarted (or the stream was deleted): start again
                raise
            self.ensure_group()
            reply = self.connection.xreadgroup(GROUP, consumer, {self.key: ">"}, count=count)
        streams: list = reply or []  # type: ignore[assignment]  # [[key, [(id, fields), …]]] without decoding
        return [_entry(entry_id, fields) for _, entries in streams for entry_id, fields in entries]

    def claim_idle(self, consumer: str, *, idle_seconds: float, count: int) -> list[StreamEntry]:
        """Entries pending with other consumers for ``idle_seconds`` (their consumer died), now ours."""
        claimed: list[StreamEntry] = []
        start = "0-0"
        while len(claimed) < count:
            reply = self.connection.xautoclaim(
                self.key, GROUP, consumer, int(idle_seconds * 1000), start_id=start, count=count
            )
            start = _text(reply[0])
            # Redis 6.2 answers nil for a pending entry trimmed from the stream: nothing to claim or count.
            claimed += [_entry(entry_id, fields) for entry_id, fields in reply[1] if entry_id is not None]
            # Redis 7 also lists (in reply[2]) entries it dropped from the pending list: trimmed before counted.
            claimed += [StreamEntry(_text(entry_id), None) for entry_id in (reply[2] if len(reply) > 2 else [])]
            if start == "0-0":
                break
        return claimed

    def settle(self, entry_ids: list[str]) -> None:
        """Acknowledge entries whose counting committed, and delete them: the stream keeps only the backlog."""
        if entry_ids:
            pipe = self.connection.pipeline(transaction=False)
            pipe.xack(self.key, GROUP, *entry_ids)
            pipe.xdel(self.key, *entry_ids)
            pipe.execute()

    def dead_letter(self, entry: StreamEntry, reason: str) -> None:
        """Move an entry that can never be counted to the dead-letter stream (bounded), then settle it."""
        fields: dict = {**(entry.fields or {}), b"entry": entry.entry_id, b"error": reason[:1000]}
        self.connection.xadd(self.dead_key, fields, maxlen=1000, approximate=True)
        self.settle([entry.entry_id])

    def backlog(self) -> tuple[int, int]:
        """(entries in the stream, of which pending with a consumer). The rest were never delivered."""
        length = int(self.connection.xlen(self.key))
        pending = 0
        try:
            for group in self.connection.xinfo_groups(self.key):
                if _text(group["name"]) == GROUP:
                    pending = int(group["pending"])
        except ResponseError:  # no such stream
            pass
        return length, pending

    def forget_consumers(self, *, idle_seconds: float) -> int:
        """Delete consumers with nothing pending that have been idle that long (each run has a name of its own)."""
        removed = 0
        try:
            consumers = self.connection.xinfo_consumers(self.key, GROUP)
        except ResponseError:
            return 0
        for consumer in consumers:
            if int(consumer["pending"]) == 0 and int(consumer["idle"]) >= idle_seconds * 1000:
                self.connection.xgroup_delconsumer(self.key, GROUP, _text(consumer["name"]))
                removed += 1
        return removed


def _entry(entry_id, fields) -> StreamEntry:
    return StreamEntry(_text(entry_id), fields if fields else None)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
