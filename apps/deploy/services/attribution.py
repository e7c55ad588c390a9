"""Counting a chunk of event batches into the database, in one transaction: exactly once per batch id.

``events_count_chunk`` takes batches read from a scene's stream. In ONE transaction it locks the scene's
``EventStreamState`` row (so aggregators of one scene never interleave), skips the batches whose id is already
counted (``EventBatch`` is unique per scene and batch id), records the others, and applies their events:

- An **exposure** (unit, revision, version, score, ts) counts in ``ExposureDay`` (revision, version, UTC day
  of ts): one exposure, the unit added to that day's HyperLogLog. The unit's first exposure in the revision
  also creates its ``UnitExposure`` (version, first time, score, cohort day, pinned by an override?) and counts
  it once among the cohort day's units, in its score histogram. Later exposures of the unit (other days, other
  processes) are exposures only; the first one counted keeps the unit's version, score and window.
- An **outcome** (unit, revision hint, metric, value, ts) is attributed to the unit's ``UnitExposure`` in the
  outcome's revision when its time falls in the attribution window ``[first − skew, first + window]`` (event
  times, whatever the arrival order): it counts in ``OutcomeDay`` of the unit's version and cohort day (the sum
  and the sum of squares of the unit's total for means; the first outcome above 0 converts the unit, moving it
  from the negatives to the positives of the score histogram). Otherwise it is counted apart in
  ``UnattributedOutcomeDay``, never guessed: ``no_revision``, ``before_exposure``, ``late``, or ``no_exposure``,
  in which case it is also kept as a ``PendingOutcome`` and attributed if the unit's exposure arrives later
  (from another process, or a client that was offline), the ``no_exposure`` count taken back.

A window is final when its end has passed: the results count a unit as a negative until an outcome inside its
window arrives, and an outcome is judged by its own time, so one delivered late still counts.

Sketches (HyperLogLog) are kept in the database as Redis' own HLL strings and updated through Redis inside the
transaction; PFADD is idempotent, so a replay never counts a unit twice there either.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.utils import timezone
from redis import Redis

from mlab_client import contract

from ..abtest.sketch import sketch_add
from ..abtest.stats import DEFAULT_BINS, score_bin
from ..models import (
    Deployment,
    EventBatch,
    EventStreamState,
    ExposureDay,
    OutcomeDay,
    PendingOutcome,
    Scene,
    UnattributedOutcomeDay,
    UnitExposure,
    UnitOutcome,
    VersionSketch,
)
from .event_stream import StreamEntry

BINS = DEFAULT_BINS
ATTRIBUTION_SKEW_SECONDS = 60.0  # an outcome this much before the first exposure still counts (clocks differ)
_EPOCH = datetime.date(1970, 1, 1)
_LOOKUP = 2000  # keys per IN (…) query (SQLite takes 32,766 parameters, MySQL more)
_Reason = UnattributedOutcomeDay.Reason


def unit_key(unit_id: str) -> int:
    """The 64-bit key a unit is stored under (a hash: the unit id itself is never stored)."""
    digest = hashlib.blake2b(unit_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@functools.lru_cache(maxsize=4096)
def _day(number: int) -> datetime.date:
    return _EPOCH + datetime.timedelta(days=number)


def day_of(ts: float) -> datetime.date:
    return _day(contract.event_day(ts))


def bins_of(raw: bytes | memoryview | None) -> np.ndarray:
    """A stored histogram (little-endian int64 counts), or zeros."""
    data = bytes(raw or b"")
    return np.frombuffer(data, dtype="<i8").copy() if data else np.zeros(BINS, dtype="<i8")


# -- reading entries -----------------------------------------------------------------------------------------------


@dataclass
class ParsedBatch:
    """A stream entry read back: its batch id (None: unreadable) and the events that follow the contract."""

    entry_id: str
    batch_id: str | None
    events: list[dict[str, Any]]
    invalid: int = 0  # events dropped for breaking the contract
    lost: bool = False  # trimmed from the stream before it was read


def parse_entry(entry: StreamEntry) -> ParsedBatch:
    """Check an entry as the events door checks a body (an entry added straight to Redis was never checked)."""
    fields = entry.fields
    if fields is None:
        return ParsedBatch(entry.entry_id, None, [], lost=True)
    batch = fields.get(b"batch", b"").decode("utf-8", "replace")
    try:
        events = json.loads(fields.get(b"events", b""))
    except ValueError:
        return ParsedBatch(entry.entry_id, None, [], invalid=1)
    count = len(events) if isinstance(events, list) else 1
    if fields.get(b"format") != contract.EVENTS_FORMAT_VERSION.encode():
        return ParsedBatch(entry.entry_id, None, [], invalid=count)
    errors = contract.batch_errors({"batch": batch, "events": events})
    if "batch" in errors or not isinstance(events, list) or not isinstance(errors.get("events", {}), dict):
        return ParsedBatch(entry.entry_id, None, [], invalid=count)
    bad = {int(index) for index in errors.get("events", {})}
    kept = [event for index, event in enumerate(events) if index not in bad]
    return ParsedBatch(entry.entry_id, batch, kept, invalid=len(bad))


# -- counting ------------------------------------------------------------------------------------------------------


@dataclass
class ChunkCounts:
    batches: int = 0
    duplicates: int = 0
    exposures: int = 0
    outcomes: int = 0
    invalid: int = 0
    lost: int = 0
    revisions: set[int] = field(default_factory=set)


def events_count_chunk(*, scene: Scene, batches: list[ParsedBatch], connection: Redis) -> ChunkCounts:
    """Count ``batches`` of ``scene`` in one transaction (see the module doc). Returns what it counted; the
    caller acknowledges the entries once this returns (the transaction committed)."""
    EventStreamState.objects.get_or_create(scene=scene)
    counts = ChunkCounts()
    with transaction.atomic():
        state = EventStreamState.objects.select_for_update().get(scene=scene)
        ids = [b.batch_id for b in batches if b.batch_id is not None]
        known = set()
        for start in range(0, len(ids), _LOOKUP):
            known |= set(
                EventBatch.objects.filter(scene=scene, batch_id__in=ids[start : start + _LOOKUP]).values_list(
                    "batch_id", flat=True
                )
            )
        fresh = []
        for batch in batches:
            counts.invalid += batch.invalid
            counts.lost += batch.lost
            if batch.batch_id is None:
                continue
            if batch.batch_id in known:
                counts.duplicates += 1
                continue
            known.add(batch.batch_id)
            fresh.append((batch.batch_id, batch))
        tally = _Tally(scene, connection)
        tally.add(event for _, batch in fresh for event in batch.events)
        tally.save()
        # Last, so that aggregated_at is (within milliseconds) the commit: what the lag is measured to.
        now = timezone.now()
        EventBatch.objects.bulk_create(
            EventBatch(scene=scene, batch_id=batch_id, entry_id=b.entry_id, events=len(b.events), aggregated_at=now)
            for batch_id, b in fresh
        )
        counts.batches = len(fresh)
        counts.exposures, counts.outcomes = tally.exposures, tally.outcomes
        counts.revisions = tally.revisions
        state.batches += counts.batches
        state.duplicate_batches += counts.duplicates
        state.exposures += counts.exposures
        state.outcomes += counts.outcomes
        state.invalid_events += counts.invalid
        state.lost_entries += counts.lost
        if batches:
            state.last_entry_id = batches[-1].entry_id
        state.save()
    return counts


@dataclass(slots=True)
class _Unit:
    """A unit's exposure in a revision, as attribution needs it."""

    version: int
    first_ts: float
    day: datetime.date
    score: float | None
    pinned: bool = False


@dataclass(slots=True)
class _UnitTotal:
    """A unit's attributed outcomes of one metric (``pk`` None: not stored yet)."""

    pk: int | None
    count: int = 0
    total: float = 0.0
    converted: bool = False


@dataclass
class _ExposureAcc:
    exposures: int = 0
    units: int = 0
    pinned: int = 0
    bins: list[int] = field(default_factory=list)  # score bins of the new units, one entry per unit
    seen: set[str] = field(default_factory=set)  # unit ids exposed that day (for the sketch)


@dataclass
class _OutcomeAcc:
    outcomes: int = 0
    converted: int = 0
    value_sum: float = 0.0
    value_sumsq: float = 0.0
    not_binary: int = 0
    bins: list[int] = field(default_factory=list)


class _Tally:
    """The effect of a chunk's events, gathered in memory, then written by ``save`` (inside the transaction)."""

    def __init__(self, scene: Scene, connection: Redis) -> None:
        self.scene = scene
        self.connection = connection
        self.window = float(scene.attribution_window)
        self.units: dict[tuple[int, int], _Unit] = {}  # (revision, unit) → the unit's exposure
        self.new_units: set[tuple[int, int]] = set()
        self.unit_outcomes: dict[tuple[int, int, str], _UnitTotal] = {}
        self.changed_unit_outcomes: set[tuple[int, int, str]] = set()
        self.exposure_days: dict[tuple[int, int, datetime.date], _ExposureAcc] = defaultdict(_ExposureAcc)
        self.outcome_days: dict[tuple[int, int, str, datetime.date], _OutcomeAcc] = defaultdict(_OutcomeAcc)
        self.apart: Counter[tuple[int, str, datetime.date, str]] = Counter()
        self.parked: list[tuple] = []  # (revision, unit, metric, value, ts)
        self.unparked: list[int] = []
        self.overrides: dict[int, frozenset[str]] = {}
        self.exposures = 0
        self.outcomes = 0
        self.revisions: set[int] = set()
        self.now = time.time()

    # -- events --------------------------------------------------------------------------------------------------

    def add(self, events: Iterable[dict[str, Any]]) -> None:
        exposures: list[dict[str, Any]] = []
        outcomes: list[dict[str, Any]] = []
        for event in events:
            (exposures if event["type"] == contract.EXPOSURE else outcomes).append(event)
        exposures.sort(key=lambda e: e["ts"])
        outcomes.sort(key=lambda e: e["ts"])
        self.exposures, self.outcomes = len(exposures), len(outcomes)
        for event in exposures:
            event["_unit"] = unit_key(event["unit_id"])
        for event in outcomes:
            event["_unit"] = unit_key(event["unit_id"])
        wanted = {(e["revision"], e["_unit"]) for e in exposures}
        wanted |= {(o["revision"], o["_unit"]) for o in outcomes if o["revision"] is not None}
        self._load_units(wanted)
        self._load_overrides({revision for revision, _ in wanted})
        for exposure in exposures:
            self._exposure(exposure)
        resumed = self._unpark()
        judged = [self._judge(o["revision"], o["_unit"], o["metric"], o["value"], o["ts"]) for o in outcomes]
        judged += resumed
        self._load_unit_outcomes({(r, u, m) for r, u, m, _, _, verdict in judged if verdict is None})
        for revision, unit, metric, value, ts, verdict in judged:
            if verdict is None:
                self._attribute(revision, unit, metric, value)
            elif verdict == _Reason.NO_EXPOSURE:
                self.parked.append((revision, unit, metric, value, ts))

    def _exposure(self, event: dict[str, Any]) -> None:
        revision, version, ts = event["revision"], event["version"], event["ts"]
        unit_id = event["unit_id"]
        key = (revision, event["_unit"])
        self.revisions.add(revision)
        day = day_of(ts)
        exposure_day = self.exposure_days[(revision, version, day)]
        exposure_day.exposures += 1
        exposure_day.seen.add(unit_id)
        if key in self.units:
            return
        score = event.get("score")
        pinned = unit_id in self.overrides.get(revision, frozenset())
        self.units[key] = _Unit(version, ts, day, score, pinned)
        self.new_units.add(key)
        exposure_day.units += 1
        exposure_day.pinned += pinned
        if score is not None:
            exposure_day.bins.append(score_bin(score, BINS))

    def _judge(self, revision: int | None, unit: int, metric: str, value: float, ts: float):
        """(revision, unit, metric, value, ts, None when attributed, else the reason it is counted apart)."""
        if revision is None:
            verdict: str | None = _Reason.NO_REVISION
            revision = 0
        else:
            exposure = self.units.get((revision, unit))
            if exposure is None:
                verdict = _Reason.NO_EXPOSURE
            elif ts < exposure.first_ts - ATTRIBUTION_SKEW_SECONDS:
                verdict = _Reason.BEFORE_EXPOSURE
            elif ts > exposure.first_ts + self.window:
                verdict = _Reason.LATE
            else:
                verdict = None
        if verdict is not None:
            self.apart[(revision, metric, day_of(ts), verdict)] += 1
        return revision, unit, metric, value, ts, verdict

    def _attribute(self, revision: int, unit: int, metric: str, value: float) -> None:
        exposure = self.units[(revision, unit)]
        key = (revision, unit, metric)
        unit_outcome = self.unit_outcomes.get(key)
        if unit_outcome is None:
            unit_outcome = self.unit_outcomes[key] = _UnitTotal(None)
        self.changed_unit_outcomes.add(key)
        day = self.outcome_days[(revision, exposure.version, metric, exposure.day)]
        before = unit_outcome.total
        after = before + value
        day.outcomes += 1
        day.value_sum += value
        day.value_sumsq += value * (before + after)  # after² − before²: the unit's square, kept current
        if value not in (0.0, 1.0) or after > 1.0:
            day.not_binary += 1
        unit_outcome.total = after
        unit_outcome.count += 1
        if value > 0 and not unit_outcome.converted:
            unit_outcome.converted = True
            day.converted += 1
            if exposure.score is not None:
                day.bins.append(score_bin(exposure.score, BINS))

    def _unpark(self) -> list[tuple]:
        """Outcomes parked for units first exposed in this chunk, judged again now (their ``no_exposure`` count
        taken back)."""
        if not self.new_units or not PendingOutcome.objects.filter(scene=self.scene).exists():
            return []
        judged = []
        by_revision: dict[int, list[int]] = defaultdict(list)
        for revision, unit in self.new_units:
            by_revision[revision].append(unit)
        for revision, units in by_revision.items():
            for start in range(0, len(units), _LOOKUP):
                parked = PendingOutcome.objects.filter(
                    scene=self.scene, revision=revision, unit__in=units[start : start + _LOOKUP]
                ).order_by("ts")
                for row in parked:
                    self.unparked.append(row.pk)
                    self.apart[(revision, row.metric, day_of(row.ts), _Reason.NO_EXPOSURE)] -= 1
                    judged.append(self._judge(revision, row.unit, row.metric, row.value, row.ts))
        return judged

    # -- loading -------------------------------------------------------------------------------------------------

    def _load_units(self, wanted: set[tuple[int, int]]) -> None:
        by_revision: dict[int, list[int]] = defaultdict(list)
        for revision, unit in wanted:
            by_revision[revision].append(unit)
        for revision, units in by_revision.items():
            for start in range(0, len(units), _LOOKUP):
                rows = UnitExposure.objects.filter(
                    scene=self.scene, revision=revision, unit__in=units[start : start + _LOOKUP]
                ).values_list("unit", "version", "first_ts", "day", "score")
                for unit, version, first_ts, day, score in rows:
                    self.units[(revision, unit)] = _Unit(version, first_ts, day, score)

    def _load_overrides(self, revisions: set[int]) -> None:
        rows = Deployment.objects.filter(scene=self.scene, revision__in=revisions).values_list("revision", "overrides")
        self.overrides = {revision: frozenset(overrides or ()) for revision, overrides in rows}

    def _load_unit_outcomes(self, wanted: set[tuple[int, int, str]]) -> None:
        by_group: dict[tuple[int, str], list[int]] = defaultdict(list)
        for revision, unit, metric in wanted:
            by_group[(revision, metric)].append(unit)
        for (revision, metric), units in by_group.items():
            for start in range(0, len(units), _LOOKUP):
                rows = UnitOutcome.objects.filter(
                    scene=self.scene, revision=revision, metric=metric, unit__in=units[start : start + _LOOKUP]
                ).values_list("pk", "unit", "count", "total", "converted")
                for pk, unit, count, total, converted in rows:
                    self.unit_outcomes[(revision, unit, metric)] = _UnitTotal(pk, count, total, converted)

    # -- writing -------------------------------------------------------------------------------------------------

    def save(self) -> None:
        scene = self.scene.pk
        new_units = []
        for revision, unit in self.new_units:
            u = self.units[(revision, unit)]
            new_units.append((scene, revision, unit, u.version, u.first_ts, u.day.isoformat(), u.score, int(u.pinned)))
        _insert(UnitExposure, ("scene", "revision", "unit", "version", "first_ts", "day", "score", "pinned"), new_units)
        created, updated = [], []
        for revision, unit, metric in self.changed_unit_outcomes:
            o = self.unit_outcomes[(revision, unit, metric)]
            if o.pk is None:
                created.append((scene, revision, unit, metric, o.count, o.total, int(o.converted)))
            else:
                updated.append((o.count, o.total, int(o.converted), o.pk))
        _insert(UnitOutcome, ("scene", "revision", "unit", "metric", "count", "total", "converted"), created)
        _update_by_pk(UnitOutcome, ("count", "total", "converted"), updated)
        if self.unparked:
            PendingOutcome.objects.filter(pk__in=self.unparked).delete()
        _insert(
            PendingOutcome,
            ("scene", "revision", "unit", "metric", "value", "ts", "parked_at"),
            [(scene, *parked, self.now) for parked in self.parked],
        )
        self._save_exposure_days()
        self._save_outcome_days()
        self._save_apart()

    def _save_exposure_days(self) -> None:
        for (revision, version, day), acc in self.exposure_days.items():
            row, _ = ExposureDay.objects.get_or_create(scene=self.scene, revision=revision, version=version, day=day)
            row.exposures += acc.exposures
            row.units += acc.units
            row.pinned_units += acc.pinned
            if acc.bins:
                bins = bins_of(row.score_bins)
                np.add.at(bins, np.asarray(acc.bins), 1)
                row.score_bins = bins.tobytes()
            row.sketch, row.active_units = sketch_add(self.connection, bytes(row.sketch or b""), sorted(acc.seen))
            row.save()
        by_version: dict[tuple[int, int], set[str]] = defaultdict(set)
        for (revision, version, _), acc in self.exposure_days.items():
            by_version[(revision, version)] |= acc.seen
        for (revision, version), seen in by_version.items():
            total, _ = VersionSketch.objects.get_or_create(scene=self.scene, revision=revision, version=version)
            total.sketch, total.active_units = sketch_add(self.connection, bytes(total.sketch or b""), sorted(seen))
            total.save()

    def _save_outcome_days(self) -> None:
        for (revision, version, metric, day), acc in self.outcome_days.items():
            row, _ = OutcomeDay.objects.get_or_create(
                scene=self.scene, revision=revision, version=version, metric=metric, day=day
            )
            row.outcomes += acc.outcomes
            row.converted += acc.converted
            row.value_sum += acc.value_sum
            row.value_sumsq += acc.value_sumsq
            row.not_binary += acc.not_binary
            if acc.bins:
                bins = bins_of(row.positive_bins)
                np.add.at(bins, np.asarray(acc.bins), 1)
                row.positive_bins = bins.tobytes()
            if not (math.isfinite(row.value_sum) and math.isfinite(row.value_sumsq)):
                raise ValueError(f"the sums of {metric!r} overflowed")
            row.save()

    def _save_apart(self) -> None:
        for (revision, metric, day, reason), delta in self.apart.items():
            if delta == 0:
                continue
            row, _ = UnattributedOutcomeDay.objects.get_or_create(
                scene=self.scene, revision=revision, metric=metric, day=day, reason=reason
            )
            row.count += delta
            row.save(update_fields=["count"])


# Rows by the thousand per chunk: plain executemany, which both back ends run as fast multi-row statements (the
# ORM's bulk_create batches SQLite's inserts in small statements, and bulk_update builds a CASE per row).


def _insert(model, fields: tuple[str, ...], rows: list[tuple]) -> None:
    if not rows:
        return
    quote = connection.ops.quote_name
    columns = ", ".join(quote(model._meta.get_field(name).column) for name in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({marks})"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 1000):
            cursor.executemany(sql, rows[start : start + 1000])


def _update_by_pk(model, fields: tuple[str, ...], rows: list[tuple]) -> None:
    """``rows``: the new values of ``fields``, then the primary key."""
    if not rows:
        return
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(model._meta.get_field(name).column)} = %s" for name in fields)
    sql = f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {quote(model._meta.pk.column)} = %s"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 1000):
            cursor.executemany(sql, rows[start : start + 1000])
