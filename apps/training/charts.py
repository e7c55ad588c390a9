"""Charts of a run's report as inline SVG: the ROC curve, feature importance, the residual histogram.

Drawn on the server so the run page needs no charting library and works without JavaScript. Labels are
escaped; coordinates are numbers we compute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, PAD = 360, 300, 40
PLOT = WIDTH - 2 * PAD


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def roc_svg(roc: Mapping[str, Sequence[float]], auc: float | None) -> SafeString:
    """The ROC curve (true positive rate against false positive rate) with the chance diagonal."""
    fpr, tpr = list(roc.get("fpr", [])), list(roc.get("tpr", []))
    if len(fpr) < 2:
        return SafeString("")
    size = PLOT
    points = " ".join(f"{_fmt(PAD + x * size)},{_fmt(PAD + (1 - y) * size)}" for x, y in zip(fpr, tpr, strict=False))
    ticks = "".join(
        f'<text x="{_fmt(PAD + t * size)}" y="{PAD + size + 14}" text-anchor="middle">{t:g}</text>'
        f'<text x="{PAD - 6}" y="{_fmt(PAD + (1 - t) * size + 4)}" text-anchor="end">{t:g}</text>'
        for t in (0, 0.5, 1)
    )
    title = "ROC curve" + (f" · AUC {auc:.3f}" if auc is not None else "")
    return mark_safe(
        f'<svg class="mlab-chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {size + 2 * PAD}" '
        f'width="{WIDTH}" height="{size + 2 * PAD}" data-chart="roc">'
        f"<title>{escape(title)}</title>"
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" class="mlab-chart-title">{escape(title)}</text>'
        f'<rect x="{PAD}" y="{PAD}" width="{size}" height="{size}" class="mlab-chart-frame"/>'
        f'<line x1="{PAD}" y1="{PAD + size}" x2="{PAD + size}" y2="{PAD}" class="mlab-chart-chance"/>'
        f'<polyline points="{points}" class="mlab-chart-line"/>'
        f"{ticks}"
        f'<text x="{WIDTH / 2}" y="{size + 2 * PAD - 4}" text-anchor="middle">false positive rate</text>'
        f'<text x="12" y="{PAD + size / 2}" transform="rotate(-90 12 {PAD + size / 2})" '
        f'text-anchor="middle">true positive rate</text>'
        "</svg>"
    )


def importance_svg(items: Sequence[Mapping[str, Any]], *, limit: int = 15) -> SafeString:
    """Horizontal bars: each raw feature's share of the model's importance, largest first."""
    items = list(items)[:limit]
    if not items:
        return SafeString("")
    row, label_width, bar_width = 20, 130, 190
    top = max(float(i["importance"]) for i in items) or 1.0
    bars = []
    for index, item in enumerate(items):
        y = 28 + index * row
        share = float(item["importance"])
        length = bar_width * share / top
        bars.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="end">{}</text>'
                '<rect x="{}" y="{}" width="{}" height="{}" class="mlab-chart-bar"><title>{}: {}</title></rect>'
                '<text x="{}" y="{}">{}</text>',
                label_width - 6,
                y + 12,
                item["feature"],
                label_width,
                y,
                _fmt(length),
                row - 6,
                item["feature"],
                f"{share:.1%}",
                _fmt(label_width + length + 4),
                y + 12,
                f"{share:.1%}",
            )  # fmt: skip
        )
    height = 28 + len(items) * row + 8
    return format_html(
        '<svg class="mlab-chart" role="img" aria-label="Feature importance" viewBox="0 0 {} {}" width="{}" '
        'height="{}" data-chart="importance"><title>Feature importance</title>'
        '<text x="{}" y="16" text-anchor="middle" class="mlab-chart-title">Feature importance</text>{}</svg>',
        WIDTH, height, WIDTH, height, WIDTH / 2, mark_safe("".join(bars)),
    )  # fmt: skip


def histogram_svg(histogram: Mapping[str, Sequence[float]], *, title: str = "Residuals") -> SafeString:
    """Bars of a histogram {edges, counts} (len(edges) == len(counts) + 1)."""
    edges, counts = list(histogram.get("edges", [])), list(histogram.get("counts", []))
    if not counts or len(edges) != len(counts) + 1:
        return SafeString("")
    top = max(counts) or 1
    width = PLOT / len(counts)
    bars = "".join(
        f'<rect x="{_fmt(PAD + i * width)}" y="{_fmt(PAD + PLOT * (1 - c / top))}" width="{_fmt(max(width - 1, 1))}" '
        f'height="{_fmt(PLOT * c / top)}" class="mlab-chart-bar"><title>{edges[i]:.3g} … {edges[i + 1]:.3g}: {c}</title></rect>'
        for i, c in enumerate(counts)
    )
    return mark_safe(
        f'<svg class="mlab-chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {PLOT + 2 * PAD}" '
        f'width="{WIDTH}" height="{PLOT + 2 * PAD}" data-chart="histogram"><title>{escape(title)}</title>'
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" class="mlab-chart-title">{escape(title)}</text>{bars}'
        f'<text x="{PAD}" y="{PLOT + PAD + 14}">{edges[0]:.3g}</text>'
        f'<text x="{PAD + PLOT}" y="{PLOT + PAD + 14}" text-anchor="end">{edges[-1]:.3g}</text>'
        "</svg>"
    )


# Colours of the series of a comparison (up to five runs), distinguishable in light and dark themes.
SERIES_COLOURS = ("#2f6fdf", "#e0701a", "#2a9d4a", "#c0392b", "#8e44ad")


def roc_overlay_svg(curves: Sequence[tuple[str, Mapping[str, Sequence[float]], float | None]]) -> SafeString:
    """Several ROC curves on one chart, one colour per run, with a legend: ``(label, roc, auc)`` each."""
    drawn = [(label, roc, auc) for label, roc, auc in curves if len(roc.get("fpr", [])) >= 2]
    if not drawn:
        return SafeString("")
    size, legend_row = PLOT, 16
    height = size + 2 * PAD + legend_row * len(drawn)
    lines, legend = [], []
    for index, (label, roc, auc) in enumerate(drawn):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        points = " ".join(
            f"{_fmt(PAD + x * size)},{_fmt(PAD + (1 - y) * size)}" for x, y in zip(roc["fpr"], roc["tpr"], strict=False)
        )
        lines.append(f'<polyline points="{points}" class="mlab-chart-series" stroke="{colour}" data-series="{index}"/>')
        y = size + 2 * PAD + legend_row * index + 4
        text = f"{label}" + (f" · AUC {auc:.3f}" if auc is not None else "")
        legend.append(
            f'<rect x="{PAD}" y="{y - 9}" width="12" height="4" fill="{colour}"/>'
            f'<text x="{PAD + 18}" y="{y}">{escape(text)}</text>'
        )
    ticks = "".join(
        f'<text x="{_fmt(PAD + t * size)}" y="{PAD + size + 14}" text-anchor="middle">{t:g}</text>'
        f'<text x="{PAD - 6}" y="{_fmt(PAD + (1 - t) * size + 4)}" text-anchor="end">{t:g}</text>'
        for t in (0, 0.5, 1)
    )
    return mark_safe(
        f'<svg class="mlab-chart" role="img" aria-label="ROC curves compared" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" data-chart="roc-overlay"><title>ROC curves compared</title>'
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" class="mlab-chart-title">ROC curves</text>'
        f'<rect x="{PAD}" y="{PAD}" width="{size}" height="{size}" class="mlab-chart-frame"/>'
        f'<line x1="{PAD}" y1="{PAD + size}" x2="{PAD + size}" y2="{PAD}" class="mlab-chart-chance"/>'
        f"{''.join(lines)}{ticks}"
        f'<text x="{WIDTH / 2}" y="{size + PAD + 30}" text-anchor="middle">false positive rate</text>'
        f"{''.join(legend)}</svg>"
    )
