"""The results of an A/B test in plain words: what ``manage.py results`` prints (and the demo loop)."""

from __future__ import annotations

from .results import BINARY, SceneResults, VersionResult
from .stats import SRM_THRESHOLD, Estimate

REASONS = {
    "no_exposure": "with no exposure of their unit in the revision",
    "before_exposure": "before their unit's first exposure",
    "late": "after the attribution window",
    "no_revision": "recorded before the client had a config",
}


def percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}%}"


def signed_percent(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1%}"


def figure(value: float | None, kind: str) -> str:
    if value is None:
        return "—"
    return percent(value, 2) if kind == BINARY else f"{value:.4g}"


def estimate_words(estimate: Estimate, kind: str) -> str:
    if estimate.value is None:
        return "no units yet"
    ci = f" (95% CI {figure(estimate.ci.low, kind)} to {figure(estimate.ci.high, kind)})" if estimate.ci else ""
    return f"{figure(estimate.value, kind)}{ci}"


def p_words(p: float) -> str:
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.4f}" if p < 0.01 else f"p = {p:.2f}"


def duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} h" if hours < 48 or hours % 24 else f"{hours // 24} days"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def version_line(v: VersionResult, kind: str) -> str:
    role = "control, " if v.control else ""
    headline = v.rate if kind == BINARY else v.mean
    what = "rate" if kind == BINARY else "mean"
    quality = ""
    if v.quality.auc is not None or v.quality.log_loss is not None:
        auc = f"{v.quality.auc:.3f}" if v.quality.auc is not None else "—"
        loss = f"{v.quality.log_loss:.3f}" if v.quality.log_loss is not None else "—"
        quality = f"; online AUC {auc}, log loss {loss}"
    return (
        f"v{v.version} ({role}{v.weight}%): {v.units:,} units, {v.exposures:,} exposures, {v.outcomes:,} outcomes; "
        f"{what} {estimate_words(headline, kind)}{quality}"
    )


def results_lines(results: SceneResults) -> list[str]:
    """The results as sentences, one per line."""
    kind = results.kind
    state = "published" if results.revision == results.published_revision else "not the published revision"
    described = "binary: the share of units with an outcome" if kind == BINARY else "a mean per unit"
    lines = [
        f"{results.scene}, revision {results.revision} ({state}), metric {results.metric} ({described}); "
        f"outcomes count within {duration(results.window_seconds)} of a unit's first exposure."
    ]
    if not results.versions:
        return [*lines, "No exposure counted yet."]
    lines += [version_line(v, kind) for v in results.versions]
    for challenger in results.challengers:
        c = challenger.comparison
        ci = c.uplift_ci
        uplift = (
            f"uplift {signed_percent(c.uplift)} (95% CI {signed_percent(ci.low)} to {signed_percent(ci.high)})"
            if c.uplift is not None and ci is not None
            else "no uplift yet"
        )
        lines.append(
            f"v{challenger.version} against control v{challenger.control}: {uplift}, {p_words(c.p_value)} "
            f"({c.test}), chance to beat control {percent(c.chance_to_beat, 0)}."
        )
    srm = results.srm
    split = " / ".join(f"v{v}: {n:,}" for v, n in sorted(results.srm_observed.items()))
    weights = " / ".join(f"{v.weight}%" for v in results.versions)
    verdict = (
        f"MISMATCH (p < {SRM_THRESHOLD:g}): the units do not follow the split; do not trust the comparison"
        if srm.mismatch
        else "no mismatch"
    )
    lines.append(f"Sample ratio: units {split} against {weights}: {p_words(srm.p_value)}, {verdict}.")
    guardrail = results.guardrail
    if guardrail.status == "off":
        lines.append("Guardrail: none set.")
    elif guardrail.status == "tripped":
        lines.append(f"Guardrail: tripped, rolled back to revision {guardrail.rollback_revision}. {guardrail.message}")
    else:
        lines.append(
            f"Guardrail on {guardrail.metric} (α {guardrail.alpha:g}, {guardrail.min_units:,} units per version): "
            f"{guardrail.status}, {guardrail.message}."
        )
    apart = [f"{count:,} {REASONS[reason]}" for reason, count in results.unattributed.items() if count]
    if apart:
        lines.append("Outcomes counted apart: " + "; ".join(apart) + ".")
    events = results.events
    lines.append(
        f"Events of the scene: {events['batches']:,} batches counted ({events['duplicate_batches']:,} sent again, "
        f"counted once), {events['invalid_events']:,} invalid."
    )
    return lines
