"""The demo loop: a ``ModelClient`` against the live server, an A/B split observed, a rollback followed, the A/B
results read back, and a bad challenger stopped by the guardrail.

    A/B (90/10) → the client predicts for every demo unit, counts the versions that served them, and records
    each unit's real click (the warehouse's ``clicked``) as its outcome → the server counts the events; the
    results show per version the online AUC (different), the click rate (the same) and the SRM check
    → rollback to the baseline revision, published → the client follows → predicts again (all baseline)
    → the A/B split published again
    → the deliberately bad version as a 50% challenger: pages of candidates, the best-scored one shown, its
    click recorded → the guardrail rolls it back to the A/B split, so the demo is left as ``mlab_demo`` made it

Units are impressions of the demo warehouse (one unit per impression), their features read from it.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth import get_user_model

from apps.deploy.abtest.results import SceneResults, scene_results
from apps.deploy.models import ExposureDay
from apps.training.datasources import DuckDBBackend, backend_for
from apps.training.models import DataSource
from mlab_client import Change, ModelClient

from .abtest import (
    CLICK,
    GuardrailStep,
    ab_results_lines,
    await_counted,
    events_counted,
    guardrail_step,
    results_header,
)
from .scene import DemoScene, demo_client_token, demo_publish
from .setup import DEMO_DATASOURCE, DEMO_USERNAME

UNITS = 10_000
FOLLOW_TIMEOUT_SECONDS = 30.0
LOOP_CLIENT_TOKEN = "demo-loop"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Say = Callable[[str], object]


@dataclass(frozen=True)
class Phase:
    """One pass over the units: which revision served them, how many units each version served, timing."""

    title: str
    revision: int
    counts: dict[int, int]
    seconds: float
    median_us: float
    followed_in: float | None = None  # seconds from publication to the client serving this revision


@dataclass
class LoopSummary:
    units: int
    phases: list[Phase] = field(default_factory=list)
    final_revision: int = 0
    results: SceneResults | None = None  # of the A/B revision, on clicks
    guardrail: GuardrailStep | None = None

    def share(self, phase: int, version: int) -> float:
        counts = self.phases[phase].counts
        return counts.get(version, 0) / max(1, sum(counts.values()))


def demo_units(datasource: DataSource, feature_names: list[str], *, count: int = UNITS) -> tuple[list, list]:
    """``(unit_ids, rows)``: the first ``count`` impressions of the demo warehouse (by ds, user, item, hour),
    each a unit ``imp:<ds>:<user>:<item>:<hour>`` with its raw features."""
    unit_ids, rows, _ = demo_impressions(datasource, feature_names, count=count)
    return unit_ids, rows


def demo_impressions(
    datasource: DataSource, feature_names: list[str], *, count: int = UNITS
) -> tuple[list, list, list[int]]:
    """``demo_units`` and whether each impression was clicked (the warehouse's real label)."""
    for name in feature_names:
        if not _IDENTIFIER.match(name):
            raise ValueError(f"feature {name!r} is not a plain column name")
    columns = ", ".join(f'"{name}"' for name in feature_names)
    sql = (
        f'SELECT "ds", "user_id", "item_id", "hour" AS "_hour", "clicked" AS "_clicked", {columns} FROM "impressions" '
        'JOIN "users" USING ("user_id") JOIN "items" USING ("item_id") '
        f'ORDER BY "ds", "user_id", "item_id", "_hour" LIMIT {int(count)}'
    )
    backend = backend_for(datasource)
    if not isinstance(backend, DuckDBBackend):  # the query below is DuckDB's (connection.execute, quoting)
        raise ValueError(f"demo units come from a DuckDB warehouse; {datasource.name!r} is a {datasource.kind} source")
    with backend.connect() as con:
        records = con.execute(sql).fetchall()
    unit_ids = [f"imp:{ds}:{user}:{item}:{hour}" for ds, user, item, hour, *_ in records]
    clicked = [int(record[4]) for record in records]
    rows = [
        {
            name: float(value) if isinstance(value, Decimal) else value
            for name, value in zip(feature_names, record[5:], strict=True)
        }
        for record in records
    ]
    return unit_ids, rows, clicked


def _predict_all(
    client: ModelClient, unit_ids: list, rows: list, clicked: list[int] | None = None
) -> tuple[Counter, float, float, set[int]]:
    """Predict for every unit; with ``clicked``, record each unit's click as its outcome (after its prediction,
    as an application would once the user acted)."""
    counts: Counter = Counter()
    revisions: set[int] = set()
    durations = []
    started = time.perf_counter()
    for index, (unit_id, row) in enumerate(zip(unit_ids, rows, strict=True)):
        before = time.perf_counter()
        prediction = client.predict(row, unit_id=unit_id)
        durations.append(time.perf_counter() - before)
        counts[prediction.version] += 1
        revisions.add(prediction.revision)
        if clicked is not None:
            client.record_outcome(unit_id, value=clicked[index], metric=CLICK)
    return counts, time.perf_counter() - started, statistics.median(durations) * 1e6, revisions


def _phase_line(phase: Phase) -> str:
    total = sum(phase.counts.values())
    served = ", ".join(f"v{version} {count:,} ({count / total:.1%})" for version, count in sorted(phase.counts.items()))
    followed = f"; the client followed {phase.followed_in:.2f}s after publication" if phase.followed_in else ""
    return (
        f"  {phase.title} (revision {phase.revision}): {served}. {total:,} predictions in {phase.seconds:.2f}s "
        f"(median {phase.median_us:.0f} µs each){followed}."
    )


def demo_loop(
    demo: DemoScene,
    *,
    base_url: str,
    say: Say = print,
    units: int = UNITS,
    follow_timeout: float = FOLLOW_TIMEOUT_SECONDS,
) -> LoopSummary:
    """Run the loop against the Mlab server at ``base_url`` (which must be serving); see the module doc.

    Raises RuntimeError when the client does not follow a publication within ``follow_timeout`` seconds."""
    user = get_user_model().objects.get(username=DEMO_USERNAME)
    token = demo_client_token(demo.scene, user=user, name=LOOP_CLIENT_TOKEN)
    ab_revision = demo.revision_with(demo.ab_splits)
    fresh = ab_revision is not None and not ExposureDay.objects.filter(scene=demo.scene, revision=ab_revision).exists()
    if ab_revision is None or demo.published_revision() != ab_revision or not fresh:
        # a revision of its own, so that its results are this run's (a rollback to the A/B: a new revision)
        ab_revision = demo_publish(demo, splits=demo.ab_splits, user=user, comment="Demo loop: the 90/10 A/B")
    baseline_revision = demo.revision_with(demo.baseline_splits)
    counted_before = events_counted(demo.scene)

    changes: dict[int, float] = {}
    changed = threading.Lock()

    def remember(change: Change) -> None:
        with changed:
            changes[change.revision] = time.monotonic()

    with ModelClient(base_url, scene=demo.scene.name, token=token, wait=30) as client:
        client.on_change(remember)
        if not client.wait_for_revision(ab_revision, timeout=follow_timeout):
            raise RuntimeError(f"the client did not reach revision {ab_revision} ({client.counters.last_error})")
        signature = client.model(demo.baseline).feature_names
        unit_ids, rows, clicked = demo_impressions(DataSource.objects.get(name=DEMO_DATASOURCE), signature, count=units)
        say(
            f"Demo loop: a ModelClient for {demo.scene.name!r} at {base_url} predicts for {len(rows):,} units "
            f"(impressions of the demo warehouse), one predict() per unit."
        )
        summary = LoopSummary(units=len(rows))

        def run_phase(title: str, revision: int, published_at: float | None, outcomes: bool = False) -> None:
            counts, seconds, median_us, revisions = _predict_all(client, unit_ids, rows, clicked if outcomes else None)
            if revisions != {revision}:
                raise RuntimeError(f"{title}: predictions came from revisions {sorted(revisions)}, not {revision}")
            with changed:
                switched = changes.get(revision)
            followed = switched - published_at if published_at is not None and switched is not None else None
            phase = Phase(title, revision, dict(counts), seconds, median_us, followed)
            summary.phases.append(phase)
            say(_phase_line(phase))

        run_phase("A/B 90/10", ab_revision, None, outcomes=True)
        counted = await_counted(demo.scene, client, since=counted_before, timeout=follow_timeout * 4)
        summary.results = scene_results(scene=demo.scene, revision=ab_revision, metric=CLICK)
        say(results_header(summary.results, counted))
        for line in ab_results_lines(summary.results):
            say(line)
        for title, splits, comment in (
            (
                "Rolled back to the baseline",
                demo.baseline_splits,
                f"Demo loop: rollback to revision {baseline_revision}",
            ),
            ("A/B published again", demo.ab_splits, "Demo loop: the 90/10 A/B again"),
        ):
            published_at = time.monotonic()
            revision = demo_publish(demo, splits=splits, user=user, comment=comment)
            if not client.wait_for_revision(revision, timeout=follow_timeout):
                raise RuntimeError(
                    f"the client did not follow revision {revision} within {follow_timeout:.0f}s "
                    f"({client.counters.last_error or 'no error recorded'})"
                )
            run_phase(title, revision, published_at)
        if demo.bad:
            summary.guardrail = guardrail_step(
                demo,
                client,
                user=user,
                unit_ids=unit_ids,
                rows=rows,
                clicked=clicked,
                say=say,
                since=counted_before,
                timeout=follow_timeout * 4,
            )
        summary.final_revision = client.revision or 0
        served = ", ".join(f"v{v} {n:,}" for v, n in sorted(client.counters.predictions.items()))
        say(f"  The client's counters: {served}; refresh failures {client.counters.refresh_failures}.")
    return summary
