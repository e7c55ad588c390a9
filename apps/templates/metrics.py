"""What the metrics of an evaluation node mean, for people who are not machine-learning experts.

Every page that shows a run's metrics (the run page, the comparison of runs, a scene's versions) reads them
from here: a label, one line of meaning, the scale to read the number against ("0.5 = coin toss, 1.0 =
perfect"), a verdict on the value (good / fair / poor, in words), and whether a higher value is better, so that
two models compare as "better by 0.012" rather than as two numbers. Numbers are rounded for people by
:func:`human_number`, one way everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

GOOD, FAIR, POOR, INFO = "good", "fair", "poor", "info"


def human_number(value: Any, *, digits: int = 3) -> str:
    """A number as people read it: scores and rates with ``digits`` decimals (0.803), large numbers with
    thousands separators and no more than ``digits`` significant digits after the point (12,345.7),
    whole numbers as they are (200,000). Anything not a finite number is "—"."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "—"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}" if magnitude >= 10**digits * 10 else f"{value:,.1f}"
    if magnitude >= 1:
        decimals = max(0, digits - len(str(int(magnitude))))
        return f"{value:,.{decimals}f}"
    if magnitude >= 10 ** -(digits - 1):
        return f"{value:.{digits}f}"
    return f"{value:.{digits - 1}g}" if magnitude >= 1e-4 else f"{value:.1e}"


def human_percent(share: float, *, signed: bool = False) -> str:
    """A share (0.0123) as a percentage people read (1.2%, or +1.2% with ``signed``)."""
    percent = share * 100
    text = f"{percent:+.1f}%" if signed else f"{percent:.1f}%"
    return text.replace("+0.0%", "0.0%").replace("-0.0%", "0.0%")


@dataclass(frozen=True)
class Verdict:
    level: str  # good, fair, poor, or info (a number that is neither good nor bad)
    text: str


@dataclass(frozen=True)
class Metric:
    """One metric as people read it. ``judge(value, metrics)`` gives the verdict; it may look at the run's other
    metrics (log loss is judged against the log loss of always predicting the positive rate)."""

    name: str
    label: str
    meaning: str
    scale: str
    higher_is_better: bool | None  # None: a setting or a property of the data, not a score
    judge: Callable[[float, Mapping[str, Any]], Verdict]

    def verdict(self, value: Any, metrics: Mapping[str, Any] | None = None) -> Verdict | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None
        return self.judge(float(value), metrics or {})

    def change(self, value: Any, reference: Any) -> Change | None:
        """How ``value`` compares with ``reference`` (another model's value of this metric)."""
        numbers = [v for v in (value, reference) if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) != 2 or self.higher_is_better is None or not all(math.isfinite(v) for v in numbers):
            return None
        delta = float(value) - float(reference)
        relative = delta / abs(reference) if reference else None
        if abs(delta) < 5e-4 * max(1.0, abs(reference)):
            return Change("same", delta, relative)
        improved = delta > 0 if self.higher_is_better else delta < 0
        return Change("better" if improved else "worse", delta, relative)


@dataclass(frozen=True)
class Change:
    direction: str  # better, worse, same
    delta: float
    relative: float | None

    @property
    def text(self) -> str:
        if self.direction == "same":
            return "about the same"
        by = human_number(abs(self.delta))
        share = f" ({human_percent(abs(self.relative))})" if self.relative is not None else ""
        return f"{self.direction} by {by}{share}"


def _bands(*bands: tuple[float, str, str], below: tuple[str, str]) -> Callable[[float, Mapping[str, Any]], Verdict]:
    """Verdicts for a higher-is-better score: the first band whose floor the value reaches, else ``below``."""

    def judge(value: float, metrics: Mapping[str, Any]) -> Verdict:
        for floor, level, text in bands:
            if value >= floor:
                return Verdict(level, text)
        return Verdict(*below)

    return judge


def _info(text: str) -> Callable[[float, Mapping[str, Any]], Verdict]:
    return lambda value, metrics: Verdict(INFO, text)


def _positive_rate(metrics: Mapping[str, Any]) -> float | None:
    rate = metrics.get("positive_rate")
    return float(rate) if isinstance(rate, int | float) and 0 < rate < 1 else None


def _judge_log_loss(value: float, metrics: Mapping[str, Any]) -> Verdict:
    rate = _positive_rate(metrics)
    if rate is None:
        return Verdict(INFO, "Lower is better; compare it between models trained on the same data.")
    guess = -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))
    ratio = value / guess
    against = f"the {human_number(guess)} of always predicting the average rate"
    if ratio < 0.85:
        return Verdict(GOOD, f"Good: well below {against}.")
    if ratio < 0.97:
        return Verdict(FAIR, f"Fair: below {against}.")
    return Verdict(POOR, f"Poor: no better than {against}.")


def _judge_accuracy(value: float, metrics: Mapping[str, Any]) -> Verdict:
    rate = _positive_rate(metrics)
    if rate is None:
        return Verdict(INFO, "Compare it with always guessing the most common class.")
    majority = max(rate, 1 - rate)
    if value <= majority + 0.005:
        return Verdict(
            POOR, f"No better than always guessing the most common class ({human_number(majority)}): read AUC instead."
        )
    return Verdict(FAIR, f"Better than always guessing the most common class ({human_number(majority)}).")


def _judge_precision(value: float, metrics: Mapping[str, Any]) -> Verdict:
    rate = _positive_rate(metrics)
    if rate is None:
        return Verdict(INFO, "Depends on the decision threshold.")
    lift = value / rate
    if lift >= 2:
        return Verdict(
            GOOD, f"{human_number(lift, digits=2)}× the positive rate ({human_number(rate)}) of random picks."
        )
    if lift >= 1.2:
        return Verdict(
            FAIR, f"{human_number(lift, digits=2)}× the positive rate ({human_number(rate)}) of random picks."
        )
    return Verdict(POOR, f"About what random picks get (the positive rate is {human_number(rate)}).")


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "auc",
            "AUC",
            "How often the model scores a random positive row above a random negative one.",
            "0.5 = coin toss, 1.0 = perfect",
            True,
            _bands(
                (0.95, FAIR, "Suspiciously high: check that no feature gives the answer away."),
                (0.8, GOOD, "Good: ranks positives first most of the time."),
                (0.7, FAIR, "Fair: useful, with room to improve."),
                (0.6, POOR, "Weak: only a little better than a coin toss."),
                below=(POOR, "Poor: about as good as a coin toss."),
            ),
        ),
        Metric(
            "ks",
            "KS",
            "The largest gap between how the model scores positives and negatives.",
            "0 = no separation, 1 = perfect",
            True,
            _bands(
                (0.4, GOOD, "Good separation."),
                (0.25, FAIR, "Fair separation."),
                below=(POOR, "Weak separation."),
            ),
        ),
        Metric(
            "log_loss",
            "Log loss",
            "How far the predicted probabilities are from what happened.",
            "lower is better; 0 = perfect",
            False,
            _judge_log_loss,
        ),
        Metric(
            "accuracy",
            "Accuracy",
            "Share of held-out rows classified right at the decision threshold.",
            "0 to 1; misleading when one class is rare",
            True,
            _judge_accuracy,
        ),
        Metric(
            "precision",
            "Precision",
            "Of the rows predicted positive, the share that really were.",
            "0 to 1; depends on the decision threshold",
            True,
            _judge_precision,
        ),
        Metric(
            "recall",
            "Recall",
            "Of the positive rows, the share the model found.",
            "0 to 1; depends on the decision threshold",
            True,
            _info("A lower threshold finds more positives, and more false alarms with them."),
        ),
        Metric(
            "f1",
            "F1",
            "Precision and recall in one number (their harmonic mean).",
            "0 = useless, 1 = perfect",
            True,
            _info("Depends on the decision threshold; rank models by AUC."),
        ),
        Metric(
            "rmse",
            "RMSE",
            "The typical size of a prediction error, in the label's units; large errors weigh more.",
            "lower is better; 0 = perfect",
            False,
            _info("Compare it with the spread of the label, and between models on the same data."),
        ),
        Metric(
            "mae",
            "MAE",
            "The average size of a prediction error, in the label's units.",
            "lower is better; 0 = perfect",
            False,
            _info("Compare it between models on the same data."),
        ),
        Metric(
            "r2",
            "R²",
            "The share of the label's variation the model explains.",
            "0 = no better than predicting the average, 1 = perfect",
            True,
            _bands(
                (0.7, GOOD, "Good: explains most of the variation."),
                (0.4, FAIR, "Fair: explains some of the variation."),
                (0.0, POOR, "Weak: explains little of the variation."),
                below=(POOR, "Poor: worse than predicting the average."),
            ),
        ),
        Metric(
            "threshold",
            "Decision threshold",
            "A score at or above this is predicted positive.",
            "set on the evaluation node",
            None,
            _info("A setting, not a result."),
        ),
        Metric(
            "positive_rate",
            "Positive rate",
            "The share of positive rows in the held-out part.",
            "a property of the data",
            None,
            _info("Not a result: accuracy and precision are read against it."),
        ),
    )
}
KEY_METRICS = ("auc", "r2")  # the one number a list shows per run (binary, regression)


def metric_guide(name: str) -> Metric | None:
    return METRICS.get(name)


def key_metric(metrics: Mapping[str, Any] | None) -> tuple[str, float] | None:
    """The run's headline metric: AUC for a binary model, R² for a regression."""
    for name in KEY_METRICS:
        value = (metrics or {}).get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return name, float(value)
    return None


@dataclass(frozen=True)
class MetricRow:
    """A metric of a run as a page shows it."""

    name: str
    label: str
    value: float
    shown: str
    meaning: str
    scale: str
    verdict: Verdict | None
    is_score: bool


def metric_rows(metrics: Mapping[str, Any] | None) -> list[MetricRow]:
    """The run's numeric metrics, known ones first in the guide's order, each with its meaning and verdict."""
    metrics = metrics or {}
    names = [n for n in METRICS if n in metrics] + sorted(n for n in metrics if n not in METRICS)
    rows = []
    for name in names:
        value = metrics[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        guide = METRICS.get(name)
        rows.append(
            MetricRow(
                name=name,
                label=guide.label if guide else name,
                value=float(value),
                shown=human_number(value),
                meaning=guide.meaning if guide else "",
                scale=guide.scale if guide else "",
                verdict=guide.verdict(value, metrics) if guide else None,
                is_score=bool(guide and guide.higher_is_better is not None),
            )
        )
    return rows
