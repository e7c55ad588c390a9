"""Metrics on the held-out part, and feature importance per raw feature. Everything returned is JSON-able
(plain floats and ints; an undefined metric is None)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn import metrics as sk


def _number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _thin(values: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` indices into ``values``, evenly spread, keeping the first and the last."""
    if len(values) <= limit:
        return np.arange(len(values))
    return np.unique(np.linspace(0, len(values) - 1, limit).round().astype(int))


def binary(label: np.ndarray, score: np.ndarray, *, threshold: float, bin_count: int) -> dict[str, Any]:
    """AUC, KS, log loss, accuracy, precision, recall and F1 at ``threshold``; confusion counts; the ROC curve
    as at most ``bin_count`` points."""
    predicted = score >= threshold
    positive = label == 1
    confusion = {
        "tp": int(np.count_nonzero(predicted & positive)),
        "fp": int(np.count_nonzero(predicted & ~positive)),
        "tn": int(np.count_nonzero(~predicted & ~positive)),
        "fn": int(np.count_nonzero(~predicted & positive)),
    }
    result: dict[str, Any] = {
        "metrics": {
            "auc": None,
            "ks": None,
            "log_loss": None,
            "accuracy": _number(sk.accuracy_score(label, predicted)),
            "precision": _number(sk.precision_score(label, predicted, zero_division=0)),
            "recall": _number(sk.recall_score(label, predicted, zero_division=0)),
            "f1": _number(sk.f1_score(label, predicted, zero_division=0)),
            "threshold": threshold,
            "positive_rate": _number(positive.mean()),
        },
        "confusion": confusion,
        "roc": {"fpr": [], "tpr": []},
    }
    if 0 < positive.sum() < len(label):  # a curve needs both classes in the test part
        fpr, tpr, _ = sk.roc_curve(label, score)
        keep = _thin(fpr, bin_count)
        result["metrics"].update(
            auc=_number(sk.roc_auc_score(label, score)),
            ks=_number(np.max(tpr - fpr)),
            log_loss=_number(sk.log_loss(label, np.clip(score, 1e-15, 1 - 1e-15), labels=[0, 1])),
        )
        result["roc"] = {"fpr": [float(v) for v in fpr[keep]], "tpr": [float(v) for v in tpr[keep]]}
    return result


def regression(label: np.ndarray, prediction: np.ndarray, *, histogram_bins: int) -> dict[str, Any]:
    """RMSE, MAE, R² and a histogram of residuals (label - prediction)."""
    residuals = label - prediction
    counts, edges = np.histogram(residuals, bins=histogram_bins)
    return {
        "metrics": {
            "rmse": _number(np.sqrt(np.mean(residuals * residuals))),
            "mae": _number(np.mean(np.abs(residuals))),
            "r2": _number(sk.r2_score(label, prediction)) if len(label) > 1 else None,
        },
        "residual_histogram": {"edges": [float(v) for v in edges], "counts": [int(v) for v in counts]},
    }


def importance(model: Any, owners: list[str], column_std: np.ndarray | None) -> list[dict[str, Any]]:
    """Importance of each raw feature, largest first, as a share of the total.

    Linear models: |coefficient| × the column's standard deviation (the weight it would have on a
    standardized column), summed over a feature's one-hot columns. Trees: ``feature_importances_`` summed
    likewise (for LightGBM, the total gain of the splits on each column; ``column_std`` is not needed).
    """
    if hasattr(model, "feature_importances_"):
        weights = np.asarray(model.feature_importances_, dtype=np.float64)
    else:
        weights = np.abs(np.asarray(model.coef_, dtype=np.float64).ravel()) * column_std
    totals: dict[str, float] = dict.fromkeys(owners, 0.0)
    for owner, weight in zip(owners, weights, strict=True):
        totals[owner] += float(weight)
    grand = sum(totals.values())
    ranked = sorted(totals.items(), key=lambda item: -item[1])
    return [{"feature": name, "importance": (value / grand if grand > 0 else 0.0)} for name, value in ranked]
