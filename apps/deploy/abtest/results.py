"""The results of a revision's A/B test, read from the aggregated rows (never from raw events).

``scene_results(scene=…, revision=…, metric=…)`` gathers, per version of the revision: units (exact: first
exposures counted once), exposures, outcomes and units converted, the rate (units converted / units, Wilson
interval) and the mean (each unit's total, zeros included, normal interval), the online AUC and log loss from
the score histograms; per challenger against the control, the test of the metric's kind (binary: pooled
two-proportion z; otherwise Welch's t) with the relative uplift, its delta-method interval and the chance to
beat control; the sample-ratio-mismatch test of the units each version got against the configured weights
(units pinned by an override left out); the guardrail's state; a daily series; and what was counted apart.

A metric is **binary** while every attributed value is 0 or 1 and no unit totals more than 1; otherwise its
figures are means. The rate is shown for both kinds (units with an outcome above 0).

``guardrail_verdict`` is the guardrail's rule, in one place: the results show it, the guardrail service acts on
it.
"""

from __future__ import annotations

import datetime
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from django.db.models import Sum

from ..models import (
    ConfigEntry,
    Deployment,
    EventStreamState,
    ExposureDay,
    GuardrailTrip,
    OutcomeDay,
    Scene,
    UnattributedOutcomeDay,
    VersionSketch,
)
from . import stats

BINARY = "binary"
MEAN = "mean"
_EPOCH = datetime.date(1970, 1, 1)


class NoSuchRevision(Exception):
    """The scene has no deployment with that revision (or none at all)."""


@dataclass(frozen=True)
class VersionResult:
    version: int
    weight: int
    control: bool
    units: int
    pinned_units: int
    active_units: int | None  # HyperLogLog estimate of the distinct units over every day
    exposures: int
    outcomes: int
    converted: int
    value_sum: float
    rate: stats.Estimate
    mean: stats.Estimate
    quality: stats.ModelQuality

    @property
    def primary(self) -> stats.Estimate:
        return self.rate

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "weight": self.weight,
            "control": self.control,
            "units": self.units,
            "pinned_units": self.pinned_units,
            "active_units_estimate": self.active_units,
            "exposures": self.exposures,
            "outcomes": self.outcomes,
            "converted": self.converted,
            "rate": _estimate(self.rate),
            "mean": _estimate(self.mean),
            "auc": self.quality.auc,
            "log_loss": self.quality.log_loss,
            "scored_units": self.quality.positives + self.quality.negatives,
        }


@dataclass(frozen=True)
class ChallengerResult:
    version: int
    control: int
    comparison: stats.Comparison

    def as_dict(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "version": self.version,
            "control": self.control,
            "test": c.test,
            "control_value": c.control,
            "value": c.challenger,
            "difference": c.difference,
            "uplift": c.uplift,
            "uplift_ci": [c.uplift_ci.low, c.uplift_ci.high] if c.uplift_ci else None,
            "statistic": c.statistic,
            "df": c.df,
            "p_value": c.p_value,
            "chance_to_beat_control": c.chance_to_beat,
        }


@dataclass(frozen=True)
class GuardrailState:
    """``status``: ``off`` (no guardrail metric), ``waiting`` (fewer units than the minimum), ``watching``,
    ``tripped`` (the guardrail rolled this revision back: ``trip``)."""

    status: str
    metric: str
    alpha: float
    min_units: int
    message: str
    worse: int | None = None  # the challenger found worse (status tripped, or a verdict about to trip)
    p_value: float | None = None
    rollback_revision: int | None = None
    tripped_at: datetime.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tripped_at"] = self.tripped_at.isoformat() if self.tripped_at else None
        return data


@dataclass(frozen=True)
class DayVersion:
    version: int
    exposures: int
    units: int
    active_units: int | None
    converted: int
    outcomes: int
    rate: float | None
    mean: float | None


@dataclass(frozen=True)
class Day:
    day: datetime.date
    open: bool  # some units first exposed that day may still have outcomes to come (their window is open)
    versions: list[DayVersion]


@dataclass
class SceneResults:
    scene: str
    revision: int
    published_revision: int
    metric: str
    kind: str
    metrics: list[str]
    window_seconds: int
    control: int | None
    comment: str
    versions: list[VersionResult]
    challengers: list[ChallengerResult]
    srm: stats.SrmResult
    srm_observed: dict[int, int]
    guardrail: GuardrailState
    unattributed: dict[str, int]
    events: dict[str, int]
    days: list[Day] = field(default_factory=list)

    def version(self, number: int) -> VersionResult | None:
        return next((v for v in self.versions if v.version == number), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scene": self.scene,
            "revision": self.revision,
            "published_revision": self.published_revision,
            "metric": self.metric,
            "kind": self.kind,
            "metrics": self.metrics,
            "attribution_window_seconds": self.window_seconds,
            "control": self.control,
            "comment": self.comment,
            "versions": [v.as_dict() for v in self.versions],
            "challengers": [c.as_dict() for c in self.challengers],
            "srm": {
                "p_value": self.srm.p_value,
                "mismatch": self.srm.mismatch,
                "chi2": self.srm.chi2,
                "df": self.srm.df,
                "threshold": stats.SRM_THRESHOLD,
                "observed": {str(v): n for v, n in self.srm_observed.items()},
                "expected": {str(v): e for v, e in self.srm.expected.items()},
                "unexpected": list(self.srm.unexpected),
            },
            "guardrail": self.guardrail.as_dict(),
            "unattributed": self.unattributed,
            "events": self.events,
            "daily": [
                {
                    "day": day.day.isoformat(),
                    "open": day.open,
                    "versions": [
                        {
                            "version": v.version,
                            "exposures": v.exposures,
                            "units": v.units,
                            "active_units": v.active_units,
                            "converted": v.converted,
                            "outcomes": v.outcomes,
                            "rate": v.rate,
                            "mean": v.mean,
                        }
                        for v in day.versions
                    ],
                }
                for day in self.days
            ],
        }


def _estimate(estimate: stats.Estimate) -> dict[str, Any]:
    return {
        "value": estimate.value,
        "ci": [estimate.ci.low, estimate.ci.high] if estimate.ci else None,
    }


# -- reading -------------------------------------------------------------------------------------------------------


def results_revision(scene: Scene, revision: int | None) -> Deployment:
    """The deployment of ``revision``, by default the published one (else the newest). Raises NoSuchRevision."""
    if revision is None:
        revision = ConfigEntry.objects.filter(scene=scene).values_list("revision", flat=True).first() or None
    deployments = Deployment.objects.filter(scene=scene)
    deployment = (
        deployments.filter(revision=revision).first() if revision else deployments.order_by("-revision").first()
    )
    if deployment is None:
        raise NoSuchRevision(f"Scene {scene.name} has no revision {revision}." if revision else "No deployment yet.")
    return deployment


def results_metrics(scene: Scene, revision: int) -> list[str]:
    """The metrics with outcomes in the revision, the most outcomes first."""
    rows = (
        OutcomeDay.objects.filter(scene=scene, revision=revision)
        .values("metric")
        .annotate(total=Sum("outcomes"))
        .order_by("-total", "metric")
    )
    return [row["metric"] for row in rows]


def scene_results(
    *,
    scene: Scene,
    revision: int | None = None,
    metric: str | None = None,
    daily: bool = True,
    now: float | None = None,
) -> SceneResults:
    """The results of ``revision`` (default: the published one) on ``metric`` (default: the guardrail's, else
    the one with the most outcomes). Raises NoSuchRevision. See the module doc."""
    deployment = results_revision(scene, revision)
    revision = deployment.revision
    metrics = results_metrics(scene, revision)
    if not metric:
        metric = scene.guardrail_metric if scene.guardrail_metric in metrics or not metrics else metrics[0]
    weights = {row["version"]: row["weight"] for row in deployment.splits}
    control = deployment.control
    exposure_rows = list(
        ExposureDay.objects.filter(scene=scene, revision=revision)
        .order_by("day", "version")
        .values_list("version", "day", "exposures", "units", "pinned_units", "score_bins", "active_units")
    )
    outcome_rows = list(
        OutcomeDay.objects.filter(scene=scene, revision=revision, metric=metric)
        .order_by("day", "version")
        .values_list(
            "version", "day", "outcomes", "converted", "value_sum", "value_sumsq", "not_binary", "positive_bins"
        )
    )
    numbers = sorted({v for v, w in weights.items() if w > 0} | {row[0] for row in exposure_rows})
    kind = MEAN if any(row[6] for row in outcome_rows) else BINARY
    active: dict[int, int | None] = dict.fromkeys(numbers)
    active.update(VersionSketch.objects.filter(scene=scene, revision=revision).values_list("version", "active_units"))
    day_active: dict[tuple[int, datetime.date], int | None] = {(row[0], row[1]): row[6] for row in exposure_rows}
    versions = [
        _version_result(number, weights.get(number, 0), number == control, exposure_rows, outcome_rows, active)
        for number in numbers
    ]
    by_number = {v.version: v for v in versions}
    challengers = []
    if control in by_number:
        for result in versions:
            if result.version != control and weights.get(result.version, 0) > 0:
                challengers.append(
                    ChallengerResult(result.version, control, _compare(kind, by_number[control], result, outcome_rows))
                )
    observed = {v.version: v.units - v.pinned_units for v in versions}
    srm = stats.srm_test(observed, {v: float(w) for v, w in weights.items()})
    published = ConfigEntry.objects.filter(scene=scene).values_list("revision", flat=True).first() or 0
    results = SceneResults(
        scene=scene.name,
        revision=revision,
        published_revision=published,
        metric=metric,
        kind=kind,
        metrics=metrics,
        window_seconds=scene.attribution_window,
        control=control,
        comment=deployment.comment,
        versions=versions,
        challengers=challengers,
        srm=srm,
        srm_observed=observed,
        guardrail=GuardrailState("off", "", 0.0, 0, ""),
        unattributed=_unattributed(scene, revision, metric),
        events=_event_totals(scene),
    )
    results.guardrail = _guardrail_state(scene, results)
    if daily:
        results.days = _days(exposure_rows, outcome_rows, numbers, day_active, scene.attribution_window, now)
    return results


def _sum_bins(rows: list[tuple], index: int) -> np.ndarray:
    total = np.zeros(stats.DEFAULT_BINS, dtype=np.int64)
    for row in rows:
        if row[index]:
            total += np.frombuffer(bytes(row[index]), dtype="<i8")
    return total


def _version_result(
    number: int, weight: int, control: bool, exposure_rows: list, outcome_rows: list, active: dict[int, int | None]
) -> VersionResult:
    exposures = [row for row in exposure_rows if row[0] == number]
    outcomes = [row for row in outcome_rows if row[0] == number]
    units = sum(row[3] for row in exposures)
    converted = sum(row[3] for row in outcomes)
    value_sum = math.fsum(row[4] for row in outcomes)
    value_sumsq = math.fsum(row[5] for row in outcomes)
    scored = _sum_bins(exposures, 5)
    positives = _sum_bins(outcomes, 7)
    negatives = np.maximum(scored - positives, 0)
    quality = stats.model_quality(
        stats.ScoreHistogram(tuple(int(c) for c in positives), tuple(int(c) for c in negatives))
    )
    return VersionResult(
        version=number,
        weight=weight,
        control=control,
        units=units,
        pinned_units=sum(row[4] for row in exposures),
        active_units=active.get(number),
        exposures=sum(row[2] for row in exposures),
        outcomes=sum(row[2] for row in outcomes),
        converted=converted,
        value_sum=value_sum,
        rate=stats.rate_estimate(stats.ProportionSample(units, min(converted, units))),
        mean=stats.mean_estimate(stats.MeanSample.from_sums(units, value_sum, value_sumsq)),
        quality=quality,
    )


def _mean_sample(result: VersionResult, outcome_rows: list) -> stats.MeanSample:
    rows = [row for row in outcome_rows if row[0] == result.version]
    return stats.MeanSample.from_sums(result.units, math.fsum(r[4] for r in rows), math.fsum(r[5] for r in rows))


def _compare(kind: str, control: VersionResult, challenger: VersionResult, outcome_rows: list) -> stats.Comparison:
    if kind == BINARY:
        return stats.compare_proportions(
            stats.ProportionSample(control.units, min(control.converted, control.units)),
            stats.ProportionSample(challenger.units, min(challenger.converted, challenger.units)),
        )
    return stats.compare_means(_mean_sample(control, outcome_rows), _mean_sample(challenger, outcome_rows))


def _unattributed(scene: Scene, revision: int, metric: str) -> dict[str, int]:
    rows = (
        UnattributedOutcomeDay.objects.filter(scene=scene, revision__in=[revision, 0], metric=metric)
        .values("reason")
        .annotate(total=Sum("count"))
    )
    counted = {row["reason"]: int(row["total"]) for row in rows}
    return {reason: counted.get(reason, 0) for reason in UnattributedOutcomeDay.Reason.values}


def _event_totals(scene: Scene) -> dict[str, int]:
    state = EventStreamState.objects.filter(scene=scene).first()
    fields = ["batches", "duplicate_batches", "exposures", "outcomes", "invalid_events", "lost_entries"]
    return {name: int(getattr(state, name)) if state else 0 for name in fields}


def _days(
    exposure_rows: list,
    outcome_rows: list,
    numbers: list[int],
    active: dict[tuple[int, datetime.date], int | None],
    window: int,
    now: float | None,
) -> list[Day]:
    """Per day: exposures received that day (and the distinct units exposed that day, estimated), units first
    exposed that day (the cohort) and the cohort's conversions so far."""
    now = time.time() if now is None else now
    exposures = {(row[0], row[1]): row for row in exposure_rows}
    outcomes = {(row[0], row[1]): row for row in outcome_rows}
    days = sorted({row[1] for row in exposure_rows} | {row[1] for row in outcome_rows})
    series = []
    for day in days:
        # the last unit of the day was exposed before its end: its window ends at most `window` after that
        closes = ((day - _EPOCH).days + 1) * 86_400 + window
        entries = []
        for number in numbers:
            e, o = exposures.get((number, day)), outcomes.get((number, day))
            units = e[3] if e else 0
            converted = o[3] if o else 0
            entries.append(
                DayVersion(
                    version=number,
                    exposures=e[2] if e else 0,
                    units=units,
                    active_units=active.get((number, day)),
                    converted=converted,
                    outcomes=o[2] if o else 0,
                    rate=converted / units if units else None,
                    mean=(o[4] if o else 0.0) / units if units else None,
                )
            )
        series.append(Day(day=day, open=closes > now, versions=entries))
    return series


# -- the guardrail's rule ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuardrailVerdict:
    """``trip`` when a challenger is worse than control with p < α, each with at least the minimum units;
    ``worse`` is the challenger with the smallest p-value among those (the one named when rolling back)."""

    trip: bool
    ready: bool  # every weighted version has the minimum units
    worse: ChallengerResult | None
    message: str


def guardrail_verdict(results: SceneResults, *, alpha: float, min_units: int) -> GuardrailVerdict:
    """The guardrail's rule on ``results`` (of the guardrail's metric): see ``GuardrailVerdict``."""
    if results.control is None or results.version(results.control) is None or not results.challengers:
        return GuardrailVerdict(False, False, None, "no challenger to compare with a control")
    control = results.version(results.control)
    assert control is not None
    short = [v.version for v in results.versions if v.weight > 0 and v.units < min_units]
    worse = []
    for challenger in results.challengers:
        mine = results.version(challenger.version)
        assert mine is not None
        c = challenger.comparison
        enough = control.units >= min_units and mine.units >= min_units
        if enough and c.difference is not None and c.difference < 0 and c.p_value < alpha:
            worse.append(challenger)
    if worse:
        found = min(worse, key=lambda ch: ch.comparison.p_value)
        return GuardrailVerdict(True, not short, found, _worse_message(results, found, alpha))
    if short:
        names = ", ".join(f"v{n}" for n in short)
        return GuardrailVerdict(False, False, None, f"waiting for {min_units:,} units per version ({names} short)")
    return GuardrailVerdict(False, True, None, f"no challenger is worse than control v{results.control} at α {alpha:g}")


def _worse_message(results: SceneResults, challenger: ChallengerResult, alpha: float) -> str:
    c = challenger.comparison
    control = results.version(challenger.control)
    mine = results.version(challenger.version)
    assert control is not None and mine is not None
    figure, shown = ("rate", _rate) if results.kind == BINARY else ("mean", _number)
    return (
        f"v{challenger.version} is worse than control v{challenger.control} on {results.metric}: {figure} "
        f"{shown(c.challenger)} against {shown(c.control)} (uplift {_percent(c.uplift)}, p = {c.p_value:.2g} "
        f"< α {alpha:g}; {mine.units:,} and {control.units:,} units)"
    )


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1%}"


def _guardrail_state(scene: Scene, results: SceneResults) -> GuardrailState:
    trip = GuardrailTrip.objects.filter(scene=scene, revision=results.revision).select_related("rollback").first()
    if trip is not None:
        return GuardrailState(
            "tripped",
            trip.metric,
            scene.guardrail_alpha,
            scene.guardrail_min_units,
            trip.reason,
            worse=trip.version,
            p_value=trip.p_value,
            rollback_revision=trip.rollback.revision if trip.rollback else None,
            tripped_at=trip.created_at,
        )
    if not scene.guardrail_metric:
        return GuardrailState("off", "", scene.guardrail_alpha, scene.guardrail_min_units, "no guardrail is set")
    alpha, min_units = scene.guardrail_alpha, scene.guardrail_min_units
    if results.metric != scene.guardrail_metric:
        return GuardrailState(
            "watching", scene.guardrail_metric, alpha, min_units, f"watching {scene.guardrail_metric}"
        )
    verdict = guardrail_verdict(results, alpha=alpha, min_units=min_units)
    status = "watching" if verdict.ready or verdict.trip else "waiting"
    worse = verdict.worse
    return GuardrailState(
        status,
        scene.guardrail_metric,
        alpha,
        min_units,
        verdict.message,
        worse=worse.version if worse else None,
        p_value=worse.comparison.p_value if worse else None,
    )
