"""The scikit-learn pipeline a plan describes: ColumnTransformer (numeric and categorical branches) →
estimator, fitted without building more than one training matrix."""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
from skl2onnx.sklapi import CastTransformer
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlab_client.contract import MISSING_CATEGORY, NUMBER, STRING

from .data import FeatureBlocks
from .plan import LocalPlan


def model_dtype(plan: LocalPlan) -> type:
    """What the estimator is fed. Trees compare float32 thresholds (in scikit-learn and in ONNX alike), so
    they get the float32 features as they are. Linear models compute in float64, in both too: their
    branches cast after imputation (which fills float32 values, like the ONNX Imputer) and after one-hot
    encoding, so a regression on large targets still agrees to far better than the parity tolerance."""
    return np.float32 if plan.trees else np.float64


def vocabularies(plan: LocalPlan, blocks: FeatureBlocks) -> list[list[str]]:
    """The ``max_categories`` most frequent categories of each categorical column (after the missing
    marker is applied), most frequent first; ties go to the smaller value, so a rerun gives the same."""
    result = []
    for j in range(len(plan.categorical)):
        counts = Counter(blocks.categorical[:, j].tolist())
        if plan.categorical_fill is not None and MISSING_CATEGORY in counts:
            counts[plan.categorical_fill] += counts.pop(MISSING_CATEGORY)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        result.append([value for value, _ in ranked[: plan.max_categories]])
    return result


def build(plan: LocalPlan, train: FeatureBlocks) -> Pipeline:
    """An unfitted pipeline for ``plan``; one-hot vocabularies are learned from ``train`` here."""
    to_float64 = [] if plan.trees else [("float64", CastTransformer(dtype=np.float64))]
    k, m = len(plan.numeric), len(plan.categorical)
    branches: list[tuple[str, Any, list[int]]] = []
    if k:
        steps: list[tuple[str, Any]] = []
        if plan.numeric_fill is not None:
            fill = plan.numeric_fill
            # keep_empty_features: a column empty in the training part must not shift the columns after it.
            imputer = SimpleImputer(strategy=fill.strategy, fill_value=fill.fill_value, keep_empty_features=True)
            steps.append(("fill_missing", imputer))
        steps += to_float64
        if plan.scaled:
            with_mean, with_std = plan.scaling
            steps.append(("standardize", StandardScaler(with_mean=with_mean, with_std=with_std, copy=False)))
        branches.append(("numeric", Pipeline(steps) if steps else "passthrough", list(range(k))))
    if m:
        steps = []
        if plan.categorical_fill not in (None, MISSING_CATEGORY):
            marker = SimpleImputer(
                missing_values=MISSING_CATEGORY, strategy="constant", fill_value=plan.categorical_fill
            )
            steps.append(("fill_missing", marker))
        encoder = OneHotEncoder(
            categories=vocabularies(plan, train), handle_unknown="ignore", sparse_output=False, dtype=np.float32
        )
        steps += [("one_hot", encoder), *to_float64]
        branches.append(("categorical", Pipeline(steps), list(range(k, k + m))))
    features = ColumnTransformer(branches, sparse_threshold=0.0)
    return Pipeline([("features", features), ("model", plan.estimator)])


def fit(
    pipeline: Pipeline,
    train: FeatureBlocks,
    label: np.ndarray,
    *,
    rounds: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Fit ``pipeline`` on the training part; returns per-column standard deviations of the matrix the
    estimator saw (for importances on a common scale). The matrix itself is dropped before returning.
    ``rounds(done, total)`` is told of each boosting round, for estimators that have rounds; whatever it
    raises stops the fit between two rounds."""
    features, model = pipeline.named_steps["features"], pipeline.named_steps["model"]
    matrix = features.fit_transform(train, label)
    columns = matrix.shape[1]
    max_features = model.get_params().get("max_features")
    if isinstance(max_features, int) and max_features > columns:
        model.set_params(max_features=columns)  # "features per split" beyond the columns there are: all of them
    fit_parameters = inspect.signature(model.fit).parameters
    if rounds is not None and "callbacks" in fit_parameters:  # LightGBM: called after each round
        total = model.get_params()["n_estimators"]
        model.fit(matrix, label, callbacks=[_RoundCallback(rounds, total)])
    elif rounds is not None and "monitor" in fit_parameters:  # scikit-learn's gradient boosting
        total = model.get_params()["n_estimators"]
        model.fit(matrix, label, monitor=lambda i, _model, _state: rounds(i + 1, total))
    else:
        model.fit(matrix, label)
    mean = matrix.mean(axis=0, dtype=np.float64)
    square = np.einsum("ij,ij->j", matrix, matrix, dtype=np.float64) / len(matrix)
    return np.sqrt(np.maximum(square - mean * mean, 0.0))


class _RoundCallback:
    """A LightGBM callback (called with its CallbackEnv after each boosting round) that passes the round on."""

    order = 100  # after LightGBM's own callbacks (logging, early stopping) have seen the round

    def __init__(self, rounds: Callable[[int, int], None], total: int):
        self.rounds, self.total = rounds, total

    def __call__(self, env: Any) -> None:
        self.rounds(env.iteration - env.begin_iteration + 1, self.total)


def categories(pipeline: Pipeline) -> list[list[str]]:
    features = pipeline.named_steps["features"]
    if "categorical" not in features.named_transformers_:
        return []
    return [list(values) for values in features.named_transformers_["categorical"].named_steps["one_hot"].categories_]


def signature(plan: LocalPlan, pipeline: Pipeline) -> list[dict[str, Any]]:
    """The raw features the model takes, in graph input order (mlab_client.contract's ``mlab.signature``)."""
    rows: list[dict[str, Any]] = [{"name": name, "type": NUMBER} for name in plan.numeric]
    for name, values in zip(plan.categorical, categories(pipeline), strict=True):
        rows.append({"name": name, "type": STRING, "categories": values})
    return rows


def column_owners(plan: LocalPlan, pipeline: Pipeline) -> list[str]:
    """For each column of the estimator's matrix, the raw feature it came from."""
    owners = list(plan.numeric)
    for name, values in zip(plan.categorical, categories(pipeline), strict=True):
        owners += [name] * len(values)
    return owners
