"""The Results section of the scene page: its context (``scene_results_context``) and its daily chart (inline SVG).

Kept apart from the rest of the scene page (admin.py, ``_sections.html``): the page includes
``admin/deploy/scene/_results.html`` and merges this context into its own, nothing else.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from .abtest.results import BINARY, NoSuchRevision, SceneResults, scene_results
from .abtest.words import REASONS, duration, figure, p_words, percent, signed_percent
from .models import ConfigEntry, GuardrailTrip, Scene

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 110, 28, 36
RECENT_TRIPS = 3


def scene_results_context(scene: Scene) -> dict[str, Any]:
    """What ``_results.html`` shows: the results of the published revision, formatted, and the guardrail's
    recent rollbacks of the scene (which stay on the page after the revision they stopped is gone)."""
    trips = list(GuardrailTrip.objects.filter(scene=scene).select_related("rollback")[:RECENT_TRIPS])
    context: dict[str, Any] = {"results": None, "results_trips": trips, "results_error": ""}
    published = ConfigEntry.objects.filter(scene=scene).values_list("revision", flat=True).first()
    if not published:
        return context
    try:
        results = scene_results(scene=scene, revision=published)
    except NoSuchRevision as exc:
        context["results_error"] = str(exc)
        return context
    context.update(
        results=results,
        results_window=duration(results.window_seconds),
        results_rows=[_version_row(results, v) for v in results.versions],
        results_units=sum(v.units for v in results.versions),
        results_challengers=[_challenger_row(results, c) for c in results.challengers],
        results_srm=_srm(results),
        results_apart=[(REASONS[reason], count) for reason, count in results.unattributed.items() if count],
        results_chart=daily_svg(results),
    )
    return context


def _version_row(results: SceneResults, v) -> dict[str, Any]:
    headline = v.rate if results.kind == BINARY else v.mean
    return {
        "version": v.version,
        "weight": v.weight,
        "control": v.control,
        "units": v.units,
        "exposures": v.exposures,
        "outcomes": v.outcomes,
        "value": figure(headline.value, results.kind),
        "ci": f"{figure(headline.ci.low, results.kind)} – {figure(headline.ci.high, results.kind)}"
        if headline.ci
        else "—",
        "auc": f"{v.quality.auc:.3f}" if v.quality.auc is not None else "—",
        "log_loss": f"{v.quality.log_loss:.3f}" if v.quality.log_loss is not None else "—",
    }


def _challenger_row(results: SceneResults, challenger) -> dict[str, Any]:
    c = challenger.comparison
    worse = c.difference is not None and c.difference < 0
    return {
        "version": challenger.version,
        "control": challenger.control,
        "uplift": signed_percent(c.uplift),
        "ci": f"{signed_percent(c.uplift_ci.low)} to {signed_percent(c.uplift_ci.high)}" if c.uplift_ci else "—",
        "p_value": p_words(c.p_value),
        "significant": c.p_value < 0.05,
        "worse": worse,
        "chance": percent(c.chance_to_beat, 0),
        "test": c.test,
    }


def _srm(results: SceneResults) -> dict[str, Any]:
    srm = results.srm
    return {
        "mismatch": srm.mismatch,
        "p_value": p_words(srm.p_value),
        "observed": ", ".join(f"v{v} {n:,}" for v, n in sorted(results.srm_observed.items())),
        "expected": ", ".join(f"v{v} {e:,.0f}" for v, e in sorted(srm.expected.items())),
        "unexpected": ", ".join(f"v{v}" for v in srm.unexpected),
    }


def daily_svg(results: SceneResults) -> SafeString:
    """The daily chart: per version, the rate (or mean) of the units first exposed that day, one line each.
    Days whose units may still convert (their window is open) are drawn hollow."""
    days = results.days
    if not days or not results.versions:
        return SafeString("")
    numbers = [v.version for v in results.versions]
    field = "rate" if results.kind == BINARY else "mean"
    values = [getattr(dv, field) for day in days for dv in day.versions if getattr(dv, field) is not None]
    top = max(values, default=0.0) or 1.0
    top *= 1.1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(index: int) -> float:
        return LEFT + (plot_w * index / (len(days) - 1) if len(days) > 1 else plot_w / 2)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    parts = [
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="mlab-chart-frame"/>',
    ]
    for tick in (0.0, top / 2, top / 1.1):
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{escape(figure(tick, results.kind))}</text>'
        )
    step = max(1, len(days) // 6)
    for index, day in enumerate(days):
        if index % step == 0 or index == len(days) - 1:
            parts.append(
                f'<text x="{x(index):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{_day(day.day)}</text>'
            )
    for position, number in enumerate(numbers):
        points = []
        for index, day in enumerate(days):
            entry = next((dv for dv in day.versions if dv.version == number), None)
            value = getattr(entry, field) if entry is not None else None
            if entry is None or value is None:
                continue
            points.append((x(index), y(value), day, entry, value))
        css = f"mlab-chart-series mlab-series-{position % 6}"
        if len(points) > 1:
            line = " ".join(f"{px:.1f},{py:.1f}" for px, py, *_ in points)
            parts.append(f'<polyline points="{line}" class="{css}"/>')
        for px, py, day, entry, value in points:
            parts.append(
                format_html(
                    '<circle cx="{}" cy="{}" r="3.5" class="{}{}"><title>v{} {}: {} ({} units{})</title></circle>',
                    f"{px:.1f}",
                    f"{py:.1f}",
                    css,
                    " mlab-open" if day.open else "",
                    number,
                    day.day.isoformat(),
                    figure(value, results.kind),
                    f"{entry.units:,}",
                    ", window still open" if day.open else "",
                )
            )
        legend_y = TOP + 14 + 18 * position
        parts.append(
            format_html(
                '<line x1="{}" y1="{}" x2="{}" y2="{}" class="{}"/><text x="{}" y="{}">v{}{}</text>',
                WIDTH - RIGHT + 10,
                legend_y - 4,
                WIDTH - RIGHT + 28,
                legend_y - 4,
                css,
                WIDTH - RIGHT + 32,
                legend_y,
                number,
                " (control)" if number == results.control else "",
            )
        )
    title = f"Daily {field} of {results.metric} by version (units first exposed that day)"
    return mark_safe(
        f'<svg class="mlab-chart mlab-results-chart" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" data-chart="results-daily">'
        f"<title>{escape(title)}</title>"
        f'<text x="{LEFT}" y="16" class="mlab-chart-title">{escape(title)}</text>' + "".join(parts) + "</svg>"
    )


def _day(day: datetime.date) -> str:
    return day.strftime("%m-%d")
