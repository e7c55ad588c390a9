"""Exposures and outcomes: recorded on the predict path, buffered in memory, sent in batches by a thread.

``EventRecorder.exposure`` is on the hot path of ``ModelClient.predict``: it takes one short lock, looks the
unit up among the units already sent in this revision and UTC day, and appends one tuple to a bounded
deque. No I/O happens there, and no lock is ever held across I/O: a daemon thread takes batches out of the
deque and hands them to a sink (``transport.HttpEvents`` or ``transport.RedisEventStream``), which answers
with a ``Delivery``. The wire format is in ``contract``.

Invariants, all kept under ``_lock``:

- every recorded event is in exactly one place: the buffer, a pending batch, sent, or dropped (by reason),
  so ``exposures + outcomes == sent + buffered + sum(dropped)`` at every instant;
- a batch keeps its id and its events until the server accepted it or it is dropped: a retry resends the
  same events under the same id. The halves of a batch refused with 413, and what is left of a batch
  refused with 400, go out under new ids: the server kept nothing of the refused batch;
- memory is bounded: at most ``capacity`` events in the buffer (when it is full the oldest is dropped and
  counted as ``overflow``) plus the pending batches, which together hold at most ``batch_size`` events
  (they only ever split what one batch took); at most ``2 * dedup_units`` unit ids are remembered, in two
  generations: when the current one is full it becomes the previous one and the previous one is forgotten,
  so a unit forgotten that way has its next exposure sent again. That costs the server a repeated exposure,
  never a missed one: it counts units as distinct ids.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from . import contract

logger = logging.getLogger("mlab_client")

ACCEPTED = "accepted"
RETRY = "retry"
TOO_LARGE = "too_large"
REJECTED = "rejected"

OVERFLOW = "overflow"  # the buffer was full: the oldest event made room
INVALID = "rejected"  # the server refused it (400), or it could never pass the contract (too long a unit id)
CLOSED = "closed"  # still unsent when close() ran out of time

_FLUSH_POLL_SECONDS = 0.05
_EXPOSURE = contract.EXPOSURE
_OUTCOME = contract.OUTCOME
_now = time.time


class Delivery(NamedTuple):
    """A sink's answer to one batch: ``ACCEPTED``, ``RETRY`` (the same batch again later), ``TOO_LARGE`` (split
    it) or ``REJECTED`` (``bad``: the indices of the events at fault; None: the whole batch)."""

    outcome: str
    bad: frozenset[int] | None = None
    error: str | None = None


class EventSink(Protocol):
    def send(self, batch_id: str, events_json: str, count: int, timeout: float) -> Delivery:
        """Deliver one batch: ``events_json`` is the JSON array of its ``count`` events."""
        ...

    def interrupt(self) -> None:
        """Abort a send in flight and refuse new ones (the end of ``close``)."""
        ...


@dataclass(frozen=True)
class EventCounters:
    """What became of the events recorded so far (a consistent copy).

    ``exposures``: exposures recorded for sending (the first of a unit per revision and UTC day);
    ``repeated_exposures``: later exposures of such a unit, counted here and not sent; ``outcomes``:
    outcomes recorded; ``sent``: events the server accepted; ``buffered``: events waiting (in the buffer or
    in a batch being sent); ``dropped``: events given up, by reason (``overflow``: the buffer was full and
    they were the oldest; ``rejected``: refused by the server with 400, or breaking the contract;
    ``closed``: unsent when ``close()`` ran out of time); ``batches``: batches accepted; ``retries``: failed
    attempts, each followed by the same batch again; ``splits``: batches split after a 413;
    ``last_error``: the last failure, in words. Always ``exposures + outcomes == sent + buffered +
    dropped_total``.
    """

    exposures: int = 0
    repeated_exposures: int = 0
    outcomes: int = 0
    sent: int = 0
    buffered: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    retries: int = 0
    splits: int = 0
    last_error: str | None = None

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


@dataclass(eq=False)
class _Batch:
    id: str
    events: list[tuple]
    first: int  # the buffer position of its oldest event: flush() waits for the batches before its mark
    encoded: list[str] | None = None  # each event's JSON, made once by the sender
    abandoned: bool = False  # counted as dropped by close() while the sender still held it


def new_batch_id() -> str:
    return os.urandom(16).hex()


def encode_event(event: tuple) -> str | None:
    """One buffered event as the contract's JSON object, or None when it can never pass the contract."""
    if event[0] == _EXPOSURE:
        _, unit, revision, version, score, ts = event
        tail = f',"score":{score!r}' if score.__class__ is float and math.isfinite(score) else ""
        kind, extra = _EXPOSURE, tail
    else:
        _, unit, revision, version, metric, value, ts = event
        kind, extra = _OUTCOME, f',"metric":{_json_string(metric)},"value":{value!r}'
    if not 1 <= len(unit) <= contract.MAX_UNIT_ID_LENGTH:
        return None
    return (
        f'{{"type":"{kind}","unit_id":{_json_string(unit)},"revision":{_json_int(revision)},'
        f'"version":{_json_int(version)}{extra},"ts":{round(ts, 3)!r}}}'
    )


def _json_int(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def _json_string(text: str) -> str:
    return json.dumps(text)  # ASCII with escapes: a lone surrogate in a unit id still makes valid UTF-8


class EventRecorder:
    """The bounded buffer of a client's events and the thread that sends it (see the module docstring).

    ``capacity`` events at most are buffered; batches hold at most ``batch_size`` events; the thread sends
    every ``interval`` seconds (at once on ``flush``), and after a failure retries the same batch with
    exponential backoff and jitter between ``retry_base`` and ``retry_cap`` seconds; each attempt may take
    ``timeout`` seconds."""

    def __init__(
        self,
        sink: EventSink,
        *,
        name: str,
        capacity: int,
        batch_size: int,
        interval: float,
        dedup_units: int,
        timeout: float,
        retry_base: float,
        retry_cap: float,
    ) -> None:
        self._sink = sink
        self._name = name
        self._capacity = capacity
        self._batch_size = min(batch_size, contract.MAX_BATCH_EVENTS)
        self._interval = interval
        self._dedup_units = dedup_units
        self._timeout = timeout
        self._retry = (retry_base, retry_cap)
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # the buffer and where it stands: positions count every event ever appended
        self._buffer: deque[tuple] = deque(maxlen=capacity)
        self._head = 0  # position of the buffer's first event
        self._pending: list[_Batch] = []
        # deduplication of exposures: per revision and UTC day
        self._epoch: tuple[int, int] = (-1, -1)
        self._epoch_ends = 0.0
        self._seen: set[str] = set()
        self._seen_before: set[str] = set()
        # counts
        self._exposures = 0
        self._repeated = 0
        self._outcomes = 0
        self._sent = 0
        self._dropped: dict[str, int] = {}
        self._batches = 0
        self._retries = 0
        self._splits = 0
        self._last_error: str | None = None
        # lifecycle
        self._accepting = True
        self._closing = False
        self._deadline = math.inf

    def __repr__(self) -> str:
        return f"<EventRecorder {self._name!r}>"

    # -- recording (any thread) ----------------------------------------------------------------------------------

    def exposure(self, unit_id: object, revision: int, version: int, score: float) -> None:
        """Record that ``unit_id`` was served ``version`` under ``revision``: buffered if it is the unit's first
        exposure in this revision and UTC day, counted as a repeat otherwise."""
        ts = _now()
        unit = unit_id if unit_id.__class__ is str else f"{unit_id}"
        with self._lock:
            if not self._accepting:
                return
            if revision != self._epoch[0] or ts >= self._epoch_ends:
                if not self._enter_epoch(revision, ts):  # a straggler from before a swap: sent, not remembered
                    self._append((_EXPOSURE, unit, revision, version, score, ts))
                    self._exposures += 1
                    return
            seen = self._seen
            if unit in seen or unit in self._seen_before:
                self._repeated += 1
                return
            seen.add(unit)
            if len(seen) >= self._dedup_units:
                self._seen_before, self._seen = seen, set()
            buffer = self._buffer
            if len(buffer) == self._capacity:
                self._head += 1
                self._dropped[OVERFLOW] = self._dropped.get(OVERFLOW, 0) + 1
            buffer.append((_EXPOSURE, unit, revision, version, score, ts))
            self._exposures += 1

    def exposures(self, revision: int, served: Iterable[tuple[object, int, float]]) -> None:
        """``exposure`` for many ``(unit_id, version, score)`` at once (``predict_many``)."""
        for unit_id, version, score in served:
            self.exposure(unit_id, revision, version, score)

    def outcome(self, unit: str, revision: int | None, version: int | None, metric: str, value: float) -> None:
        """Buffer an outcome (already checked by the caller); every outcome is sent."""
        ts = _now()
        with self._lock:
            if not self._accepting:
                return
            self._append((_OUTCOME, unit, revision, version, metric, value, ts))
            self._outcomes += 1

    def _append(self, event: tuple) -> None:
        if len(self._buffer) == self._capacity:
            self._head += 1
            self._dropped[OVERFLOW] = self._dropped.get(OVERFLOW, 0) + 1
        self._buffer.append(event)

    def _enter_epoch(self, revision: int, ts: float) -> bool:
        """Move deduplication to ``revision``'s UTC day of ``ts`` if that is later than the current one."""
        day = contract.event_day(ts)
        if (revision, day) <= self._epoch:
            return False
        self._epoch = (revision, day)
        self._epoch_ends = (day + 1) * contract.SECONDS_PER_DAY
        self._seen, self._seen_before = set(), set()
        return True

    # -- what it holds -------------------------------------------------------------------------------------------

    @property
    def counters(self) -> EventCounters:
        with self._lock:
            return EventCounters(
                exposures=self._exposures,
                repeated_exposures=self._repeated,
                outcomes=self._outcomes,
                sent=self._sent,
                buffered=len(self._buffer) + sum(len(b.events) for b in self._pending),
                dropped=dict(self._dropped),
                batches=self._batches,
                retries=self._retries,
                splits=self._splits,
                last_error=self._last_error,
            )

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sending thread (idempotent; not after close)."""
        with self._lock:
            if self._thread is not None or self._closing:
                return
            self._thread = threading.Thread(target=self._run, name=f"mlab-events:{self._name}", daemon=True)
        self._thread.start()

    def flush(self, timeout: float) -> bool:
        """Send what is buffered now; True once all of it was sent (or dropped, as ``counters`` says), False
        when ``timeout`` seconds passed first (what is left stays buffered and is retried)."""
        self.start()
        deadline = time.monotonic() + timeout
        with self._lock:
            mark = self._head + len(self._buffer)
        self._wake.set()
        with self._progress:
            while not self._flushed(mark):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
                # overflow moves the head without a notification: look again now and then
                self._progress.wait(min(remaining, _FLUSH_POLL_SECONDS))
        return True

    def _flushed(self, mark: int) -> bool:
        return self._head >= mark and all(batch.first >= mark for batch in self._pending)

    def begin_close(self, deadline: float) -> None:
        """Stop recording and send what is left until ``deadline`` (``time.monotonic()``), one attempt a batch."""
        with self._lock:
            self._accepting = False
            self._deadline = deadline
            unsent = bool(self._buffer or self._pending)
            idle = self._thread is None
        if idle and unsent:
            self.start()  # a client closed before it started still sends what it recorded
        with self._lock:
            self._closing = True
        self._wake.set()

    def finish_close(self, deadline: float) -> None:
        """Wait for the sender until ``deadline``, then interrupt it; what is left is counted as ``closed``."""
        thread = self._thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                self._sink.interrupt()
                thread.join(_FLUSH_POLL_SECONDS)
        with self._progress:
            left = len(self._buffer)
            self._head += left
            self._buffer.clear()
            for batch in self._pending:
                batch.abandoned = True
                left += len(batch.events)
            self._pending.clear()
            if left:
                self._dropped[CLOSED] = self._dropped.get(CLOSED, 0) + left
                logger.warning("mlab_client %s: %d events unsent at close", self._name, left)
            self._progress.notify_all()
        if thread is None or not thread.is_alive():
            self._sink.interrupt()

    # -- the sending thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while True:
            if not self._closing:
                self._wake.wait(self._interval if failures == 0 else self._backoff(failures))
                self._wake.clear()
            try:
                failures = self._drain(failures)
            except Exception:  # a bug must not end the thread: the batch is retried, with backoff
                logger.exception("mlab_client %s: sending events failed unexpectedly", self._name)
                failures += 1
            if self._closing:
                with self._progress:
                    self._progress.notify_all()
                return

    def _backoff(self, failures: int) -> float:
        base, cap = self._retry
        delay = min(cap, base * 2 ** min(failures - 1, 30))
        return random.uniform(delay / 2, delay)

    def _drain(self, failures: int) -> int:
        """Send batches until the buffer is empty (returns 0) or an attempt fails (returns the failure count)."""
        while True:
            batch = self._next_batch()
            if batch is None:
                return 0
            closing = self._closing
            timeout = self._timeout
            if closing:
                timeout = min(timeout, self._deadline - time.monotonic())
                if timeout <= 0:
                    return failures
            delivery = self._deliver(batch, timeout)
            if delivery.outcome == RETRY:
                failures += 1
                with self._lock:
                    self._retries += 1
                    self._last_error = delivery.error
                if failures == 1:
                    logger.warning(
                        "mlab_client %s: could not send events (%s); retrying batch %s with backoff",
                        self._name,
                        delivery.error,
                        batch.id,
                    )
                return failures
            if failures:
                logger.info("mlab_client %s: events are being sent again", self._name)
                failures = 0

    def _next_batch(self) -> _Batch | None:
        with self._lock:
            if self._pending:
                return self._pending[0]
            count = min(len(self._buffer), self._batch_size)
            if count == 0:
                return None
            popleft = self._buffer.popleft
            batch = _Batch(new_batch_id(), [popleft() for _ in range(count)], self._head)
            self._head += count
            self._pending.append(batch)
            return batch

    def _deliver(self, batch: _Batch, timeout: float) -> Delivery:
        if batch.encoded is None and not self._encode(batch):
            return Delivery(ACCEPTED)  # nothing in it could be sent; counted as rejected
        events_json = "[" + ",".join(batch.encoded or ()) + "]"
        if len(events_json) > contract.MAX_BATCH_BYTES - 100 and len(batch.events) > 1:
            delivery = Delivery(TOO_LARGE)  # the server would refuse it: split it without asking
        else:
            delivery = self._sink.send(batch.id, events_json, len(batch.events), timeout)
        if delivery.outcome == ACCEPTED:
            self._settle(batch, sent=True)
        elif delivery.outcome == TOO_LARGE:
            self._split(batch)
        elif delivery.outcome == REJECTED:
            self._reject(batch, delivery)
        return delivery

    def _encode(self, batch: _Batch) -> bool:
        """Encode a new batch's events; those that can never pass the contract leave it, counted."""
        encoded, kept = [], []
        for event in batch.events:
            text = encode_event(event)
            if text is not None:
                encoded.append(text)
                kept.append(event)
        with self._progress:
            invalid = len(batch.events) - len(kept)
            if invalid:
                self._dropped[INVALID] = self._dropped.get(INVALID, 0) + invalid
                if batch.abandoned:  # close() counted them as closed
                    self._dropped[CLOSED] -= invalid
            batch.events, batch.encoded = kept, encoded  # not sent yet: the id may stay
            if not kept:
                self._remove(batch)
                self._progress.notify_all()
                return False
        return True

    def _settle(self, batch: _Batch, *, sent: bool) -> None:
        with self._progress:
            if batch.abandoned:  # close() counted it as unsent, then the sink answered after all
                if sent:
                    self._dropped[CLOSED] -= len(batch.events)
                    self._sent += len(batch.events)
                    self._batches += 1
                return
            self._remove(batch)
            if sent:
                self._sent += len(batch.events)
                self._batches += 1
            self._progress.notify_all()

    def _split(self, batch: _Batch) -> None:
        """413: send the halves under new ids, and never again a batch as large as this one."""
        count = len(batch.events)
        if count == 1:
            logger.warning("mlab_client %s: the server refuses even a batch of one event; dropping it", self._name)
            self._reject(batch, Delivery(REJECTED))
            return
        half = count // 2
        assert batch.encoded is not None
        with self._progress:
            self._batch_size = max(1, min(self._batch_size, half))
            self._splits += 1
            if batch.abandoned:
                return
            index = self._pending.index(batch)
            self._pending[index : index + 1] = [
                _Batch(new_batch_id(), batch.events[:half], batch.first, batch.encoded[:half]),
                _Batch(new_batch_id(), batch.events[half:], batch.first + half, batch.encoded[half:]),
            ]

    def _reject(self, batch: _Batch, delivery: Delivery) -> None:
        """400: drop the events the server named (all of them when it named none); the rest go out anew."""
        count = len(batch.events)
        bad = delivery.bad if delivery.bad else frozenset(range(count))
        assert batch.encoded is not None
        with self._progress:
            self._dropped[INVALID] = self._dropped.get(INVALID, 0) + len(bad)
            self._last_error = delivery.error
            if batch.abandoned:  # counted as closed by close(): the events named move to rejected
                self._dropped[CLOSED] -= len(bad)
                return
            keep = [i for i in range(count) if i not in bad]
            index = self._pending.index(batch)
            rest = _Batch(
                new_batch_id(), [batch.events[i] for i in keep], batch.first, [batch.encoded[i] for i in keep]
            )
            self._pending[index : index + 1] = [rest] if keep else []
            self._progress.notify_all()
        logger.warning(
            "mlab_client %s: the server refused %d of %d events (%s)", self._name, len(bad), count, delivery.error
        )

    def _remove(self, batch: _Batch) -> None:
        try:
            self._pending.remove(batch)
        except ValueError:
            pass


def named_events(answer: Any, count: int) -> frozenset[int] | None:
    """The indices of the events a 400 body names (see ``contract``), or None when it names none."""
    events = answer.get("events") if isinstance(answer, dict) else None
    if isinstance(events, dict):
        indices = {int(key) for key in events if isinstance(key, str) and key.isdigit()}
    elif isinstance(events, list) and len(events) == count and all(isinstance(e, dict) for e in events):
        indices = {index for index, errors in enumerate(events) if errors}
    else:
        return None
    indices = {index for index in indices if index < count}
    return frozenset(indices) or None
