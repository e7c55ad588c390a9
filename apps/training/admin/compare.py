"""The comparison of 2 to 5 runs side by side: the parameters that differ (highlighted; the rest folded away),
the metrics with the best of each row marked, the ROC curves on one chart, and feature importances."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from apps.templates.metrics import METRICS, human_number, human_percent
from apps.templates.nodes import registry

from .. import charts
from ..models import TrainingRun

COMPARE_MIN, COMPARE_MAX = 2, 5


def _shown(value: Any) -> str:
    """A parameter value as people read it."""
    if value is None or value == []:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return human_number(value) if isinstance(value, float) else str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _param_labels(runs: Sequence[TrainingRun]) -> dict[tuple[str, str], str]:
    """(node key, parameter) → "Node label · parameter label", from the runs' templates' node types."""
    labels: dict[tuple[str, str], str] = {}
    for run in runs:
        for node in run.template.nodes.all():
            if node.node_type not in registry:
                continue
            node_type = registry.get(node.node_type)
            for param in node_type.params:
                labels.setdefault((node.key, param.name), f"{node_type.label} · {param.label}")
    return labels


def parameter_rows(runs: Sequence[TrainingRun]) -> list[dict[str, Any]]:
    """One row per node parameter any of the runs has, in node order; ``differs`` when the runs disagree."""
    labels = _param_labels(runs)
    keys: list[tuple[str, str]] = []
    for run in runs:
        for node, values in (run.params or {}).items():
            for name in values or {}:
                if (node, name) not in keys:
                    keys.append((node, name))
    rows = []
    for node, name in keys:
        values = [(run.params or {}).get(node, {}).get(name) for run in runs]
        comparable = {json.dumps(v, sort_keys=True) for v in values}
        rows.append(
            {
                "key": f"{node}.{name}",
                "label": labels.get((node, name), f"{node} · {name}"),
                "values": [_shown(v) for v in values],
                "cells": [
                    {"value": _shown(v), "note": note}
                    for v, note in zip(
                        values, _list_differences(values) if len(comparable) > 1 else [""] * len(values), strict=True
                    )
                ],
                "differs": len(comparable) > 1,
            }
        )
    return rows


def _list_differences(values: list[Any]) -> list[str]:
    """For lists of names (columns), what each run lacks or adds against the others: "without price"."""
    if not all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in values):
        return [""] * len(values)
    union = {item for v in values for item in v}
    common = set.intersection(*(set(v) for v in values))
    notes = []
    for v in values:
        parts = []
        if missing := sorted(union - set(v)):
            parts.append("without " + ", ".join(missing))
        if extra := sorted(set(v) - common):
            parts.append("with " + ", ".join(extra))
        notes.append("; ".join(parts))
    return notes


def metric_comparison(runs: Sequence[TrainingRun]) -> list[dict[str, Any]]:
    """One row per metric, its meaning, each run's value, and which run is best (by the metric's direction)."""
    names = [n for n in METRICS if any(n in (run.metrics or {}) for run in runs)]
    rows = []
    for name in names:
        guide = METRICS[name]
        values = [(run.metrics or {}).get(name) for run in runs]
        numbers = [v if isinstance(v, int | float) and not isinstance(v, bool) else None for v in values]
        best = None
        present = [v for v in numbers if v is not None]
        shown = [human_number(v) for v in numbers]
        if guide.higher_is_better is not None and len(present) > 1:
            target = max(present) if guide.higher_is_better else min(present)
            best = numbers.index(target)
            if shown.count(shown[best]) > 1:  # the same once rounded for people: no winner to point at
                best = None
        rows.append(
            {
                "name": name,
                "label": guide.label,
                "meaning": guide.meaning,
                "scale": guide.scale,
                "cells": [
                    {"shown": shown[index], "best": index == best, "verdict": guide.verdict(v, run.metrics)}
                    for index, (v, run) in enumerate(zip(numbers, runs, strict=True))
                ],
            }
        )
    return rows


def importance_rows(runs: Sequence[TrainingRun], *, limit: int = 15) -> list[dict[str, Any]]:
    """Features by their mean share of importance across the runs, each run's share (0 to 1) beside."""
    shares = [
        {item["feature"]: float(item["importance"]) for item in (run.report or {}).get("feature_importance", [])}
        for run in runs
    ]
    features = {feature for run_shares in shares for feature in run_shares}
    ranked = sorted(features, key=lambda f: -sum(s.get(f, 0.0) for s in shares))[:limit]
    return [
        {
            "feature": feature,
            "cells": [
                {
                    "share": s.get(feature),
                    "shown": human_percent(s[feature]) if feature in s else "—",
                    "colour": charts.SERIES_COLOURS[index % len(charts.SERIES_COLOURS)],
                }
                for index, s in enumerate(shares)
            ],
        }
        for feature in ranked
    ]


def compare_context(runs: Sequence[TrainingRun]) -> dict[str, Any]:
    rows = parameter_rows(runs)
    return {
        "runs": [
            {"run": run, "colour": charts.SERIES_COLOURS[index % len(charts.SERIES_COLOURS)]}
            for index, run in enumerate(runs)
        ],
        "differing_params": [row for row in rows if row["differs"]],
        "same_params": [row for row in rows if not row["differs"]],
        "metric_rows": metric_comparison(runs),
        "roc_chart": charts.roc_overlay_svg(
            [
                (
                    f"run {run.pk}" + (f" · {run.name}" if run.name else ""),
                    (run.report or {}).get("roc") or {},
                    (run.metrics or {}).get("auc"),
                )
                for run in runs
            ]  # fmt: skip
        ),
        "importance_rows": importance_rows(runs),
        "templates_differ": len({run.template_id for run in runs}) > 1,
    }
