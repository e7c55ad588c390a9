"""Evaluation nodes: the metrics a run reports, computed on the held-out split."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import NodeKind, NodeType, Param, ParamType, Task, registry

T = ParamType


@registry.register
class BinaryEvaluation(NodeType):
    key = "evaluate.binary"
    kind = NodeKind.EVALUATE
    task = Task.BINARY
    label = "Binary evaluation"
    description = "AUC, KS, log loss, accuracy, precision, recall, F1 and the ROC curve."
    params = (
        Param(
            "threshold",
            T.FLOAT,
            "Decision threshold",
            default=0.5,
            min=0.0,
            exclusive_min=True,
            max=1.0,
            exclusive_max=True,
            help="A score at or above this is predicted positive.",
        ),
        Param(
            "binCount",
            T.INT,
            "ROC points",
            default=200,
            min=10,
            max=10_000,
            help="The ROC curve is kept at about this many points.",
        ),
    )

    def local_step(self, cleaned: Mapping[str, Any], context: Any) -> None:
        context.evaluate_binary(threshold=cleaned["threshold"], bin_count=cleaned["binCount"])


@registry.register
class RegressionEvaluation(NodeType):
    key = "evaluate.regression"
    kind = NodeKind.EVALUATE
    task = Task.REGRESSION
    label = "Regression evaluation"
    description = "RMSE, MAE and R², and a histogram of residuals."
    params = (
        Param(
            "histogram_bins",
            T.INT,
            "Residual histogram bins",
            default=30,
            min=5,
            max=500,
            help="Bars of the residual histogram.",
        ),
    )

    def local_step(self, cleaned: Mapping[str, Any], context: Any) -> None:
        context.evaluate_regression(histogram_bins=cleaned["histogram_bins"])
