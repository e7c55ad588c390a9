"""The demo loop's A/B results: outcomes recorded by the client, counted by the server, read back; the guardrail.

- ``await_counted``: after ``client.flush()``, wait until the server counted every event the client sent (the
  worker's aggregation job does it; if none runs, this process aggregates, and says so).
- ``ab_results_lines``: per version the online AUC (different: the models rank differently) and the click rate
  (the same: a model does not change who clicks), and the sample-ratio check.
- ``guardrail_step``: the deliberately bad version goes live as a 50% challenger; the demo application shows,
  of each page of candidates, the one the model scores highest and records whether it was clicked
  (``offer_click``); the guardrail rolls the revision back, and the client follows.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from apps.deploy.abtest.results import SceneResults, scene_results
from apps.deploy.abtest.words import duration, estimate_words, p_words, signed_percent
from apps.deploy.models import ConfigEntry, EventStreamState, GuardrailTrip, Scene
from apps.deploy.services import events_aggregate, guardrail_check, scene_publish
from mlab_client import ModelClient

from .scene import GUARDRAIL_METRIC, DemoScene, demo_publish

Say = Callable[[str], object]
CLICK = "click"
PAGE_SIZE = 4
AGGREGATION_TIMEOUT_SECONDS = 120.0
WORKER_GRACE_SECONDS = 3.0  # how long the loop leaves the worker to count (or publish) before doing it itself


def events_counted(scene: Scene) -> int:
    """Exposures and outcomes the server has counted for the scene, ever."""
    row = EventStreamState.objects.filter(scene=scene).values_list("exposures", "outcomes").first()
    return sum(row) if row else 0


def await_counted(
    scene: Scene, client: ModelClient, *, since: int, timeout: float = AGGREGATION_TIMEOUT_SECONDS
) -> str:
    """Flush the client, then wait until the server counted what it sent (``since``: the count before the
    client sent anything). Returns who counted: the worker, or this process when no worker did."""
    started = time.monotonic()
    if not client.flush(timeout=30):
        raise RuntimeError(f"the client could not send its events ({client.counters.events.last_error})")
    sent = client.counters.events.sent
    deadline = started + timeout
    progress, progressed_at, helped = events_counted(scene), time.monotonic(), False
    while events_counted(scene) - since < sent:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server counted {events_counted(scene) - since} of {sent} events in {timeout:.0f}s")
        counted = events_counted(scene)
        if counted != progress:
            progress, progressed_at = counted, time.monotonic()
        elif time.monotonic() - progressed_at > WORKER_GRACE_SECONDS:
            run = events_aggregate(
                scene_id=scene.pk
            )  # no worker counts: count here (a worker's run holding the lock wins)
            helped = helped or run.entries > 0
            progressed_at = time.monotonic()
        time.sleep(0.1)
    who = "this process (no worker counted them)" if helped else "the worker"
    return f"{sent:,} events counted by {who} {time.monotonic() - started:.1f}s after the flush"


def ab_results_lines(results: SceneResults) -> list[str]:
    lines = []
    for v in results.versions:
        auc = f"{v.quality.auc:.3f}" if v.quality.auc is not None else "—"
        loss = f"{v.quality.log_loss:.3f}" if v.quality.log_loss is not None else "—"
        role = "control, " if v.control else ""
        lines.append(
            f"    v{v.version} ({role}{v.weight}%): {v.units:,} units, click rate {estimate_words(v.rate, 'binary')}; "
            f"online AUC {auc}, log loss {loss}"
        )
    for challenger in results.challengers:
        c = challenger.comparison
        verdict = (
            "no significant difference, as it should be (a model does not change who clicks)"
            if c.p_value >= 0.01
            else "a difference by chance (1 run in 100 sees one at p < 0.01: the split, not the model, decided)"
        )
        ci = c.uplift_ci
        uplift = f"{signed_percent(c.uplift)}" + (
            f" (95% CI {signed_percent(ci.low)} to {signed_percent(ci.high)})" if ci is not None else ""
        )
        lines.append(
            f"    Click rates: {verdict}: v{challenger.version} against v{challenger.control} {uplift}, "
            f"{p_words(c.p_value)}."
        )
    aucs = {v.version: v.quality.auc for v in results.versions if v.quality.auc is not None}
    if len(aucs) > 1:
        best = max(aucs, key=lambda number: aucs[number])
        lines.append(f"    Online AUCs differ: v{best} ranks the clicks best ({aucs[best]:.3f}).")
    srm = results.srm
    observed = " / ".join(f"v{v} {n:,}" for v, n in sorted(results.srm_observed.items()))
    weights = " / ".join(f"{v.weight}%" for v in results.versions)
    verdict = "MISMATCH" if srm.mismatch else "no mismatch: the units follow the split"
    lines.append(f"    Sample ratio: {observed} against {weights}: {p_words(srm.p_value)}, {verdict}.")
    return lines


@dataclass(frozen=True)
class GuardrailStep:
    revision: int  # the revision with the bad challenger
    pages: dict[int, int]  # pages served per version
    rollback_revision: int
    reason: str
    seconds: float  # from the flush of the last events to the client following the rollback


def guardrail_step(
    demo: DemoScene,
    client: ModelClient,
    *,
    user,
    unit_ids: list[str],
    rows: list[dict],
    clicked: list[int],
    say: Say,
    since: int,
    timeout: float = AGGREGATION_TIMEOUT_SECONDS,
) -> GuardrailStep:
    """Deploy the bad version at 50%, serve pages of candidates, wait for the guardrail's rollback (see the
    module doc). ``since``: the server's count of events before this client sent any."""
    scene = demo.scene
    say(
        f"  The guardrail: v{demo.bad} (logistic regression trained on inverted labels: it ranks the likeliest clicks "
        f"last) goes live beside v{demo.baseline}, 50/50. The demo application shows, of each page of {PAGE_SIZE} "
        f"candidates, the one the model scores highest; {GUARDRAIL_METRIC} records whether it was clicked. The "
        f"scene's guardrail watches {scene.guardrail_metric} (α {scene.guardrail_alpha:g}, "
        f"{scene.guardrail_min_units:,} units per version)."
    )
    revision = demo_publish(demo, splits=demo.bad_splits, user=user, comment="Demo loop: a deliberately bad challenger")
    if not client.wait_for_revision(revision, timeout=30):
        raise RuntimeError(f"the client did not follow revision {revision} ({client.counters.last_error})")
    pages: Counter = Counter()
    for page, start in enumerate(range(0, len(rows) - PAGE_SIZE + 1, PAGE_SIZE)):
        unit = f"page:{revision}:{page}"
        scored = client.predict_many(rows[start : start + PAGE_SIZE], unit_ids=[unit] * PAGE_SIZE)
        shown = max(range(PAGE_SIZE), key=lambda i: scored[i].score)
        client.record_outcome(unit, value=clicked[start + shown], metric=GUARDRAIL_METRIC)
        pages[scored[0].version] += 1
    served = ", ".join(f"v{v} {n:,}" for v, n in sorted(pages.items()))
    say(f"  {sum(pages.values()):,} pages served under revision {revision}: {served}.")
    started = time.monotonic()
    say(f"  The client's {await_counted(scene, client, since=since, timeout=timeout)}.")
    trip = _await_trip(scene, revision, started + timeout)
    rollback = trip.rollback.revision if trip.rollback else 0
    while not client.wait_for_revision(rollback, timeout=WORKER_GRACE_SECONDS):
        if time.monotonic() > started + timeout:
            raise RuntimeError(f"the client did not follow the guardrail's rollback (revision {rollback})")
        if ConfigEntry.objects.get(scene=scene).revision < rollback:
            scene_publish(scene_id=scene.pk)  # no worker published it: publish here
    seconds = time.monotonic() - started
    why = trip.reason.removeprefix("Guardrail: ").removesuffix(" Rolled back automatically.")
    say(
        f"  The guardrail rolled revision {revision} back by itself: {why} Revision {rollback} restores revision "
        f"{trip.rollback.rollback_of if trip.rollback else '—'}; the client serves it {seconds:.1f}s after the flush."
    )
    return GuardrailStep(revision, dict(pages), rollback, trip.reason, seconds)


def _await_trip(scene: Scene, revision: int, deadline: float) -> GuardrailTrip:
    while True:
        trip = GuardrailTrip.objects.filter(scene=scene, revision=revision).select_related("rollback").first()
        if trip is not None:
            return trip
        if time.monotonic() > deadline:
            results = scene_results(scene=scene, revision=revision, metric=GUARDRAIL_METRIC, daily=False)
            raise RuntimeError(f"the guardrail did not trip: {results.guardrail.message}")
        # The aggregation checks the guardrail after each run; once every event is counted, ask it once more.
        guardrail_check(scene=scene, revision=revision)
        time.sleep(0.2)


def results_header(results: SceneResults, counted: str) -> str:
    return (
        f"  Results of revision {results.revision} on {CLICK} (the warehouse's real label; outcomes count within "
        f"{duration(results.window_seconds)} of a unit's first exposure), {counted}:"
    )
