"""Preprocessing and split nodes. They act on the feature kinds the sample node names (numeric or
categorical), so a business developer never has to list columns twice."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import NodeKind, NodeType, Param, ParamType, registry

T = ParamType


@registry.register
class FillMissing(NodeType):
    key = "preprocess.fill_missing"
    kind = NodeKind.PREPROCESS
    label = "Fill missing values"
    description = (
        "Replaces missing numeric values by a statistic of the training split, and missing categories by a marker."
    )
    params = (
        Param(
            "numeric_strategy",
            T.CHOICE,
            "Numeric strategy",
            default="median",
            choices=("mean", "median", "most_frequent", "constant"),
            help="How a missing numeric value is filled, learned on the training split.",
        ),
        Param(
            "numeric_fill_value",
            T.FLOAT,
            "Numeric fill value",
            default=0.0,
            help="The value used by the 'constant' strategy.",
        ),
        Param(
            "categorical_fill_value",
            T.STR,
            "Missing category",
            default="__missing__",
            help="Missing categorical values become this category.",
        ),
    )

    def local_step(self, cleaned: Mapping[str, Any], context: Any) -> None:
        context.fill_missing(
            numeric_strategy=cleaned["numeric_strategy"],
            numeric_fill_value=cleaned["numeric_fill_value"],
            categorical_fill_value=cleaned["categorical_fill_value"],
        )


@registry.register
class Standardize(NodeType):
    key = "preprocess.standardize"
    kind = NodeKind.PREPROCESS
    label = "Standardize"
    description = "Scales numeric features to zero mean and unit variance (learned on the training split)."
    params = (
        Param("with_mean", T.BOOL, "Center", default=True, help="Subtract the mean."),
        Param("with_std", T.BOOL, "Scale", default=True, help="Divide by the standard deviation."),
    )

    def local_step(self, cleaned: Mapping[str, Any], context: Any) -> None:
        context.standardize(with_mean=cleaned["with_mean"], with_std=cleaned["with_std"])


@registry.register
class OneHot(NodeType):
    key = "preprocess.one_hot"
    kind = NodeKind.PREPROCESS
    label = "One-hot encode"
    description = "Turns each categorical feature into one indicator column per frequent category."
    params = (
        Param(
            "max_categories",
            T.INT,
            "Categories per column",
            default=50,
            min=2,
            max=10_000,
            help="The most frequent categories of each column are kept; rarer or unseen ones encode as all zeros.",
        ),
    )

    def local_step(self, cleaned: Mapping[str, Any], context: Any) -> None:
        context.one_hot(max_categories=cleaned["max_categories"])


@registry.register
class Split(NodeType):
    key = "split"
    kind = NodeKind.SPLIT
    label = "Train/test split"
    description = "Holds out a random part of the sample to evaluate the model on rows it never saw."
    params = (
        Param(
            "test_ratio",
            T.FLOAT,
            "Test ratio",
            default=0.2,
            min=0.05,
            max=0.5,
            help="Fraction of rows held out for evaluation.",
        ),
        Param(
            "seed",
            T.INT,
            "Random seed",
            default=42,
            min=0,
            max=2**31 - 1,
            pai_name="randomSeed",
            help="The same seed gives the same split.",
        ),
        Param(
            "stratify",
            T.BOOL,
            "Stratify",
            default=True,
            help="Binary templates: keep the positive rate equal in both parts.",
        ),
    )

    def local_step(self, cleaned: Mapping[str, Any], context: Any) -> None:
        context.split_rows(test_ratio=cleaned["test_ratio"], seed=cleaned["seed"], stratify=cleaned["stratify"])
