"""What the server and the client agree on, in one place. Both sides import these names.

Model artifacts are ONNX files written by the trainer (apps/training/trainer) and read by the client.
One graph input per raw feature, named like the feature, shape [None, 1]: ``tensor(float)`` for numeric
features, ``tensor(string)`` for categorical ones. Preprocessing (imputation, scaling, one-hot with the
training vocabulary) is inside the graph, so a client feeds raw values.

``metadata_props`` of the ONNX model carry:

- ``mlab.signature``: JSON list ``[{"name": …, "type": "number" | "string", "categories": [...]?}]`` in
  graph input order; ``categories`` is the vocabulary a one-hot encoder learned (others encode as zeros).
- ``mlab.task``: ``"binary"`` or ``"regression"``.
- ``mlab.threshold``: binary only; a score at or above it is label 1.
- ``mlab.score_output``: the name of the graph output holding the score: for binary the probability
  tensor ``[N, 2]`` (score = column 1), for regression the prediction ``[N, 1]``.
- ``mlab.format_version``: ``"1"``.

Missing values as fed to the graph: a missing number is NaN (float32); a missing category is the empty
string ``MISSING_CATEGORY``, which the graph's categorical imputer replaces by the template's marker.

Artifacts cached in Redis (written by the server, read by clients given ``redis_url``), raw bytes, no pickle:

- ``artifact_meta_key(sha256)`` → JSON ``{"size": int, "chunk_size": int, "chunks": int}``
- ``artifact_chunk_key(sha256, i)`` → bytes of chunk ``i`` (0-based); the concatenation must hash to sha256.
  Readers verify the sha256 and treat any missing or mismatching piece as a cache miss. Readers rely on
  ``chunks`` and ``size``; ``chunk_size`` (every chunk's size but the last) is informational. The server
  writes the chunks before the meta, so a reader that finds the meta finds a complete entry.

The config a client polls, ``GET /api/v1/config/{scene}/`` with ``Authorization: Token <key>`` (what
``mlab_client.config.SceneConfig.parse`` checks, naming the field at fault):

- ``scene`` (str), ``revision`` (int ≥ 0, only grows), ``salt`` (str), ``buckets`` (``BUCKETS``);
- ``allocation``: ``[[start, end, version], …]`` half-open ranges covering every bucket exactly once;
- ``versions``: ``[{"version", "sha256" (64 lowercase hex), "size", "format": "onnx", "url"}, …]``, every
  version the allocation or the overrides name; ``url`` is on the same server (the client sends its token
  nowhere else) and answers the artifact's bytes;
- ``overrides``: ``{unit_id: version}``, winning over buckets.

Answered with an ``ETag``; ``If-None-Match`` with the current ETag → 304; adding ``?wait=N`` (N ≤
``MAX_WAIT_SECONDS``) holds the request until a new revision (200) or N seconds (304).

Bucketing (see ``routing``): a unit's bucket is
``int.from_bytes(sha256(f"{salt}:{unit_id}".encode()).digest()[:8], "big") % BUCKETS``.

Events (exposures and outcomes, client → server; what ``mlab_client.events`` sends and ``batch_errors``
checks):

- ``POST /api/v1/scenes/{scene}/events/`` with the client token, body ``{"batch": id, "events": [event, …]}``:
  ``batch`` matches ``BATCH_ID_PATTERN`` (the SDK sends ``uuid4().hex``), ``events`` holds 1 to
  ``MAX_BATCH_EVENTS`` events. Answers: 202 accepted (also for a batch id seen before, which is not counted
  again); 413 over the server's limit of events or bytes (nothing kept: the SDK splits the batch, under new
  ids, and lowers its batch size); 400 when the batch breaks this contract (nothing kept), with a body
  naming the field, per event by its index: ``{"events": {"3": {"unit_id": ["…"]}}}`` (or DRF's list
  aligned with the events, ``{}`` for a good one), or ``{"batch": ["…"]}``. The SDK drops the events named,
  counts them, and sends the rest under a new batch id; a 400 naming no event drops the whole batch.
  Anything else (5xx, 401, 403, 404, 429, no answer) is retried with backoff, under the same id.
- An exposure: ``{"type": "exposure", "unit_id": str, "revision": int, "version": int, "score": float,
  "ts": float}``; ``score`` is left out when the model's score is not a finite number. The SDK sends the
  first exposure of a unit per revision per UTC day (``event_day``) and per process: a unit served by two
  processes, or again after the SDK's bounded memory of units forgot it, is sent again, so the server counts
  units as distinct ids, never by counting exposures.
- An outcome: ``{"type": "outcome", "unit_id": str, "revision": int | null, "version": int | null,
  "metric": str, "value": float, "ts": float}``; ``revision`` and ``version`` are the client's routing of
  the unit when the outcome was recorded (null when it had no config yet): a hint, since the server
  attributes an outcome to the unit's exposure. Every outcome is sent (several per unit add up).
- ``unit_id`` is the unit as ``routing`` hashes it (``str(unit_id)``), 1 to ``MAX_UNIT_ID_LENGTH``
  characters; ``revision`` ≥ 0 and ``version`` ≥ 1 are integers; ``metric`` matches ``METRIC_PATTERN``;
  ``value`` and ``score`` are finite numbers; ``ts`` is seconds since the Unix epoch (UTC), finite and
  positive. Unknown keys are ignored, so that a newer SDK can add some.
- With ``redis_url`` the SDK skips HTTP and ``XADD``s each batch as one entry into
  ``events_stream_key(scene)``, ``MAXLEN ~ EVENTS_STREAM_MAXLEN`` (entries, i.e. batches), fields
  ``{"batch": id, "format": EVENTS_FORMAT_VERSION, "events": JSON array of the events}``. The server's
  events endpoint writes the same entry, so one consumer reads both; an entry was not validated by HTTP, so
  the consumer checks it with ``batch_errors`` too, and it deduplicates by batch id (a retried ``XADD``
  whose reply was lost adds the same batch twice).
"""

import math
import re
from typing import Any, TypeGuard
from urllib.parse import quote

BUCKETS = 10_000
FORMAT_VERSION = "1"
MAX_WAIT_SECONDS = 60

META_SIGNATURE = "mlab.signature"
META_TASK = "mlab.task"
META_THRESHOLD = "mlab.threshold"
META_SCORE_OUTPUT = "mlab.score_output"
META_FORMAT_VERSION = "mlab.format_version"

NUMBER = "number"
STRING = "string"

MISSING_CATEGORY = ""


def artifact_meta_key(sha256: str) -> str:
    return f"mlab:artifact:{sha256}:meta"


def artifact_chunk_key(sha256: str, index: int) -> str:
    return f"mlab:artifact:{sha256}:{index}"


# -- events ------------------------------------------------------------------------------------------------------

EXPOSURE = "exposure"
OUTCOME = "outcome"
DEFAULT_METRIC = "conversion"
EVENTS_FORMAT_VERSION = "1"
BATCH_ID_PATTERN = r"[A-Za-z0-9_-]{8,64}"
METRIC_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
MAX_UNIT_ID_LENGTH = 256
MAX_BATCH_EVENTS = 1000  # a server may refuse smaller batches with 413; never larger ones
MAX_BATCH_BYTES = 1 << 20
EVENTS_STREAM_MAXLEN = 10_000  # stream entries; one entry is one batch of at most MAX_BATCH_EVENTS events
SECONDS_PER_DAY = 86_400

_BATCH_ID = re.compile(BATCH_ID_PATTERN)
_METRIC = re.compile(METRIC_PATTERN)


def events_path(scene: str) -> str:
    """The events endpoint of ``scene``, relative to the server's base URL."""
    return f"api/v1/scenes/{quote(scene, safe='')}/events/"


def events_stream_key(scene: str) -> str:
    """The Redis stream holding ``scene``'s event batches."""
    return f"mlab:events:{scene}"


def event_day(ts: float) -> int:
    """The UTC day of a timestamp, as days since the epoch: the day an exposure is deduplicated and counted in."""
    return int(ts // SECONDS_PER_DAY)


def _is_int(value: object) -> TypeGuard[int]:
    """An int and not a bool (JSON true is no revision)."""
    return value.__class__ is int


def _is_number(value: object) -> TypeGuard[float]:
    return (value.__class__ is int or value.__class__ is float) and math.isfinite(value)


def event_errors(event: object) -> dict[str, list[str]]:
    """What is wrong with one event, field → messages (empty when it follows the contract)."""
    if not isinstance(event, dict):
        return {"non_field_errors": ["an event is a JSON object"]}
    errors: dict[str, list[str]] = {}
    kind = event.get("type")
    if kind not in (EXPOSURE, OUTCOME):
        errors["type"] = [f"must be {EXPOSURE!r} or {OUTCOME!r}"]
    unit = event.get("unit_id")
    if not isinstance(unit, str) or not 1 <= len(unit) <= MAX_UNIT_ID_LENGTH:
        errors["unit_id"] = [f"a string of 1 to {MAX_UNIT_ID_LENGTH} characters"]
    nullable = kind == OUTCOME
    revision, version = event.get("revision"), event.get("version")
    if not (nullable and revision is None) and not (_is_int(revision) and revision >= 0):
        errors["revision"] = ["an integer ≥ 0" + (" or null" if nullable else "")]
    if not (nullable and version is None) and not (_is_int(version) and version >= 1):
        errors["version"] = ["an integer ≥ 1" + (" or null" if nullable else "")]
    ts = event.get("ts")
    if not _is_number(ts) or ts <= 0:
        errors["ts"] = ["seconds since the epoch, a positive number"]
    if kind == EXPOSURE and "score" in event and not _is_number(event["score"]):
        errors["score"] = ["a finite number, or left out"]
    if kind == OUTCOME:
        metric = event.get("metric")
        if not isinstance(metric, str) or not _METRIC.fullmatch(metric):
            errors["metric"] = [f"a name matching {METRIC_PATTERN}"]
        if not _is_number(event.get("value")):
            errors["value"] = ["a finite number"]
    return errors


def batch_errors(document: object) -> dict[str, Any]:
    """The body of a 400 for a batch that breaks the contract, or ``{}`` when it follows it.

    The size limits are not checked here: over ``MAX_BATCH_EVENTS`` events (or a server's lower limit) the
    answer is 413, decided before this check."""
    if not isinstance(document, dict):
        return {"non_field_errors": ['a batch is a JSON object {"batch": id, "events": [...]}']}
    errors: dict[str, Any] = {}
    batch = document.get("batch")
    if not isinstance(batch, str) or not _BATCH_ID.fullmatch(batch):
        errors["batch"] = [f"an id matching {BATCH_ID_PATTERN}"]
    events = document.get("events")
    if not isinstance(events, list) or not events:
        errors["events"] = ["a non-empty list of events"]
    else:
        faults = {str(index): fault for index, event in enumerate(events) if (fault := event_errors(event))}
        if faults:
            errors["events"] = faults
    return errors
