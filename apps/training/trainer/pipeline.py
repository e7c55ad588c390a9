"""The scikit-learn pipeline a plan describes: ColumnTransformer (numeric and categorical branches) →
estimator, and its fit.

What the preprocessing learns from the data (each numeric column's fill value, each categorical column's
vocabulary) is computed here from the training rows first, with numpy on the columns as they are (float
numbers, dictionary codes), and given to the transformers as parameters; fitting them learns nothing more.
So a tree model, which sees the raw features only through fill values and one-hot columns, is fitted on a
matrix built here straight from the columns (:func:`design_matrix`: one float32 allocation, no per-row
string), while the ColumnTransformer is fitted on a few rows for its layout and exported unchanged. Linear
models go through the ColumnTransformer as it is (their scaler learns from the data).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
from skl2onnx.sklapi import CastTransformer
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from apps.templates.nodes import Task
from apps.training.text_column import NULL
from mlab_client.contract import MISSING_CATEGORY, NUMBER, STRING

from .data import PreparedSample
from .plan import LocalPlan

LAYOUT_ROWS = 256  # rows a tree model's ColumnTransformer is fitted on: it learns nothing from them


def model_dtype(plan: LocalPlan) -> type:
    """What the estimator is fed. Trees compare float32 thresholds (in the model and in ONNX alike), so
    they get the float32 features as they are. Linear models compute in float64, in both too: their
    branches cast after imputation (which fills float32 values, like the ONNX Imputer) and after one-hot
    encoding, so a regression on large targets still agrees to far better than the parity tolerance."""
    return np.float32 if plan.trees else np.float64


class FillMissing(TransformerMixin, BaseEstimator):
    """Replaces NaN in column j by ``values[j]`` (computed beforehand by :func:`fill_values`).

    It exports as an ONNX Imputer through skl2onnx's SimpleImputer converter (registered in export.py),
    which reads the attributes a fitted SimpleImputer has: ``statistics_``, ``missing_values``, ``fill_value``.
    """

    missing_values = np.nan
    fill_value = None

    def __init__(self, values: Any = None):
        self.values = values

    def fit(self, X: Any, y: Any = None) -> FillMissing:
        self.statistics_ = np.asarray(self.values, dtype=np.float32)
        if np.shape(X)[1] != len(self.statistics_):
            raise ValueError(f"{np.shape(X)[1]} columns for {len(self.statistics_)} fill values")
        self.n_features_in_ = len(self.statistics_)
        return self

    def transform(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        return np.where(np.isnan(X), self.statistics_, X)


def fill_values(plan: LocalPlan, prepared: PreparedSample, rows: np.ndarray) -> np.ndarray | None:
    """Each numeric column's fill value, learned on ``rows`` as the fill node's strategy says (as float32
    values, which is what the model and the ONNX graph see); 0 for a column empty in those rows. None
    without a fill node."""
    if plan.numeric_fill is None:
        return None
    strategy, constant = plan.numeric_fill.strategy, plan.numeric_fill.fill_value
    values = np.zeros(len(plan.numeric), dtype=np.float32)
    for j, column in enumerate(prepared.numeric):
        if strategy == "constant":
            values[j] = constant
            continue
        seen = column[rows].astype(np.float32)
        seen = seen[~np.isnan(seen)]
        if not len(seen):
            continue
        if strategy == "mean":
            values[j] = seen.mean(dtype=np.float64)
        elif strategy == "median":
            values[j] = np.median(seen)
        else:  # most_frequent: the smallest of the most frequent values
            distinct, counts = np.unique(seen, return_counts=True)
            values[j] = distinct[np.argmax(counts)]
    return values


def _missing_marker(plan: LocalPlan) -> str:
    return MISSING_CATEGORY if plan.categorical_fill is None else plan.categorical_fill


def vocabularies(plan: LocalPlan, prepared: PreparedSample, rows: np.ndarray) -> list[list[str]]:
    """The ``max_categories`` most frequent categories of each categorical column in ``rows`` (a missing value
    counts as the missing marker), most frequent first; ties go to the smaller value, so a rerun gives the
    same."""
    result = []
    for column in prepared.categorical:
        counts = np.bincount(column.codes[rows] + 1, minlength=len(column.values) + 1)  # slot 0: missing
        tally = dict(zip(column.values.tolist(), counts[1:].tolist(), strict=True))
        if counts[0]:
            marker = _missing_marker(plan)
            tally[marker] = tally.get(marker, 0) + int(counts[0])
        ranked = sorted(((value, n) for value, n in tally.items() if n), key=lambda item: (-item[1], item[0]))
        result.append([value for value, _ in ranked[: plan.max_categories]])
    return result


def build(plan: LocalPlan, fills: np.ndarray | None, vocabulary: list[list[str]]) -> Pipeline:
    """An unfitted pipeline for ``plan``, with the fill values and vocabularies learned beforehand."""
    to_float64 = [] if plan.trees else [("float64", CastTransformer(dtype=np.float64))]
    k, m = len(plan.numeric), len(plan.categorical)
    branches: list[tuple[str, Any, list[int]]] = []
    if k:
        steps: list[tuple[str, Any]] = []
        if fills is not None:
            steps.append(("fill_missing", FillMissing(fills)))
        steps += to_float64
        if plan.scaled:
            assert plan.scaling is not None  # scaled: a standardize node gave (with_mean, with_std)
            with_mean, with_std = plan.scaling
            steps.append(("standardize", StandardScaler(with_mean=with_mean, with_std=with_std, copy=False)))
        branches.append(("numeric", Pipeline(steps) if steps else "passthrough", list(range(k))))
    if m:
        steps = []
        if plan.categorical_fill not in (None, MISSING_CATEGORY):
            marker = SimpleImputer(
                missing_values=MISSING_CATEGORY,
                strategy="constant",
                fill_value=plan.categorical_fill,
                keep_empty_features=True,  # fitted on a few rows, where a column may well be all missing
            )
            steps.append(("fill_missing", marker))
        encoder = OneHotEncoder(categories=vocabulary, handle_unknown="ignore", sparse_output=False, dtype=np.float32)
        steps += [("one_hot", encoder), *to_float64]
        branches.append(("categorical", Pipeline(steps), list(range(k, k + m))))
    features = ColumnTransformer(branches, sparse_threshold=0.0)
    return Pipeline([("features", features), ("model", plan.estimator)])


def design_matrix(plan: LocalPlan, pipeline: Pipeline, prepared: PreparedSample, rows: np.ndarray) -> np.ndarray:
    """What the fitted ColumnTransformer of a tree model gives for ``rows``, built straight from the columns:
    the float32 numbers with missing ones filled, then each categorical column's one-hot columns. One
    C-ordered allocation, as LightGBM takes it without a copy."""
    fills = _fitted_fills(pipeline)
    vocabulary = categories(pipeline)
    width = len(plan.numeric) + sum(len(values) for values in vocabulary)
    matrix = np.zeros((len(rows), width), dtype=np.float32)
    for j, column in enumerate(prepared.numeric):
        values = column[rows].astype(np.float32)
        if fills is not None:
            values[np.isnan(values)] = fills[j]
        matrix[:, j] = values
    offset = len(plan.numeric)
    for text, values in zip(prepared.categorical, vocabulary, strict=True):
        position = {value: p for p, value in enumerate(values)}
        lookup = np.full(len(text.values) + 1, -1, dtype=np.int64)  # code → one-hot column; slot -1: missing
        for code, value in enumerate(text.values.tolist()):
            lookup[code] = position.get(value, -1)
        lookup[NULL] = position.get(_missing_marker(plan), -1)
        hot = lookup[text.codes[rows]]
        known = np.flatnonzero(hot >= 0)
        matrix[known, offset + hot[known]] = 1.0
        offset += len(values)
    return matrix


def _fitted_fills(pipeline: Pipeline) -> np.ndarray | None:
    numeric = pipeline.named_steps["features"].named_transformers_.get("numeric")
    if isinstance(numeric, Pipeline) and "fill_missing" in numeric.named_steps:
        return numeric.named_steps["fill_missing"].statistics_
    return None


def fit(
    plan: LocalPlan,
    pipeline: Pipeline,
    prepared: PreparedSample,
    rows: np.ndarray,
    *,
    rounds: Callable[[int, int], None] | None = None,
) -> np.ndarray | None:
    """Fit ``pipeline`` on the training ``rows``. Returns, for linear models, the per-column standard
    deviations of the matrix the estimator saw (for importances on a common scale); None for trees. The
    matrix itself is dropped before returning. ``rounds(done, total)`` is told of each boosting round, for
    estimators that have rounds; whatever it raises stops the fit between two rounds."""
    features, model = pipeline.named_steps["features"], pipeline.named_steps["model"]
    label = prepared.label[rows]
    if plan.trees:
        features.fit(prepared.blocks(rows[:LAYOUT_ROWS]))
        matrix = design_matrix(plan, pipeline, prepared, rows)
    else:
        matrix = features.fit_transform(prepared.blocks(rows), label)
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
    if plan.trees:
        return None
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


def scores(plan: LocalPlan, pipeline: Pipeline, prepared: PreparedSample, rows: np.ndarray) -> np.ndarray:
    """The fitted model's scores for ``rows``: the probabilities [N, 2] (binary) or predictions [N]."""
    if not plan.trees:
        blocks = prepared.blocks(rows)
        if plan.task == Task.BINARY:
            return pipeline.predict_proba(blocks)
        return np.asarray(pipeline.predict(blocks), dtype=np.float64).reshape(-1)
    matrix = design_matrix(plan, pipeline, prepared, rows)
    model = pipeline.named_steps["model"]
    if plan.task == Task.BINARY:
        return model.predict_proba(matrix)
    return np.asarray(model.predict(matrix), dtype=np.float64).reshape(-1)


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
