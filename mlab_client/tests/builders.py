"""Contract-conforming ONNX models built from fitted scikit-learn pipelines, for the SDK's tests and benchmarks.

The layout follows ``mlab_client.contract``: one ``[None, 1]`` input per raw feature (float for numbers, string
for categories), preprocessing inside the graph (median imputation, scaling for linear models, the empty
string imputed to a marker then one-hot encoded), and the metadata the client reads. The real trainer
(apps/training) writes the same format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

import numpy as np
from onnx import helper as onnx_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlab_client import contract

NUMBERS = ["age", "price", "clicks_7d"]
STRINGS = ["city", "device"]
CITIES = ["beijing", "shanghai", "hangzhou", "shenzhen"]
DEVICES = ["ios", "android", "web"]
MISSING_MARKER = "__missing__"  # the template's marker a missing category becomes inside the graph


@dataclass(frozen=True)
class BuiltModel:
    """A fitted pipeline, its ONNX artifact, and the rows it was trained on (as the client takes them)."""

    kind: str
    pipeline: Pipeline
    onnx: bytes
    rows: list[dict]
    matrix: np.ndarray  # the same rows as the pipeline takes them: object array, numbers then strings


def sample(n: int, seed: int) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Synthetic click data with missing values in every column; numbers are float32-representable."""
    rng = np.random.default_rng(seed)
    age = rng.normal(38, 11, n).astype(np.float32)
    price = rng.exponential(20, n).astype(np.float32)
    clicks = rng.poisson(3, n).astype(np.float32)
    city = rng.choice(CITIES, n).astype(object)
    device = rng.choice(DEVICES, n).astype(object)
    age[rng.random(n) < 0.05] = np.nan
    price[rng.random(n) < 0.05] = np.nan
    city[rng.random(n) < 0.05] = contract.MISSING_CATEGORY
    logit = 0.05 * (np.nan_to_num(age, nan=38) - 38) - 0.03 * np.nan_to_num(price, nan=20) + 0.3 * clicks
    logit += np.where(city == "shanghai", 1.0, 0.0) + np.where(device == "ios", 0.5, 0.0) - 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    matrix = np.empty((n, 5), dtype=object)
    for column, values in enumerate([age, price, clicks, city, device]):
        matrix[:, column] = values
    rows = [
        {
            "age": None if np.isnan(age[i]) else float(age[i]),
            "price": None if np.isnan(price[i]) else float(price[i]),
            "clicks_7d": float(clicks[i]),
            "city": None if city[i] == contract.MISSING_CATEGORY else city[i],
            "device": device[i],
        }
        for i in range(n)
    ]
    return rows, matrix, y


def _pipeline(kind: str, seed: int) -> Pipeline:
    numeric = [("impute", SimpleImputer(strategy="median"))]
    if kind not in ("gbdt", "rf"):  # trees compare raw float32 thresholds; scaling would only add rounding
        numeric.append(("scale", StandardScaler()))
    categorical = Pipeline(
        [
            (
                "impute",
                SimpleImputer(strategy="constant", missing_values=contract.MISSING_CATEGORY, fill_value=MISSING_MARKER),
            ),
            ("one_hot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    prepare = ColumnTransformer(
        [("numbers", Pipeline(numeric), [0, 1, 2]), ("categories", categorical, [3, 4])], sparse_threshold=0
    )
    estimator = {
        "lr": lambda: LogisticRegression(C=1.0 if seed == 0 else 0.05, max_iter=500),
        "gbdt": lambda: GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=seed),
        "rf": lambda: RandomForestClassifier(n_estimators=200, min_samples_leaf=2, random_state=seed, n_jobs=1),
        "linear": LinearRegression,
    }[kind]()
    return Pipeline([("prepare", prepare), ("estimate", estimator)])


def conforming_onnx(pipeline: Pipeline, *, task: str, threshold: float = 0.5) -> bytes:
    """Convert a fitted pipeline over ``NUMBERS + STRINGS`` columns into a contract-conforming ONNX artifact."""
    inputs = [(name, FloatTensorType([None, 1])) for name in NUMBERS]
    inputs += [(name, StringTensorType([None, 1])) for name in STRINGS]
    estimator = pipeline.steps[-1][1]
    options = {id(estimator): {"zipmap": False}} if task == "binary" else None
    model = convert_sklearn(pipeline, initial_types=inputs, options=options, target_opset=17)
    encoder = pipeline.named_steps["prepare"].named_transformers_["categories"].named_steps["one_hot"]
    signature = [{"name": name, "type": contract.NUMBER} for name in NUMBERS]
    signature += [
        {"name": name, "type": contract.STRING, "categories": [str(c) for c in categories]}
        for name, categories in zip(STRINGS, encoder.categories_, strict=True)
    ]
    outputs = [output.name for output in model.graph.output]
    score_output = "probabilities" if task == "binary" else outputs[0]
    assert score_output in outputs, outputs
    metadata = {
        contract.META_SIGNATURE: json.dumps(signature),
        contract.META_TASK: task,
        contract.META_SCORE_OUTPUT: score_output,
        contract.META_FORMAT_VERSION: contract.FORMAT_VERSION,
    }
    if task == "binary":
        metadata[contract.META_THRESHOLD] = repr(threshold)
    onnx_helper.set_model_props(model, metadata)
    return model.SerializeToString()


@cache
def build(kind: str, seed: int = 0, n: int = 2000) -> BuiltModel:
    """A fitted model of ``kind`` (``lr``, ``gbdt``, ``rf``, ``linear``) and its artifact; cached per process."""
    rows, matrix, y = sample(n, seed)
    pipeline = _pipeline(kind, seed)
    if kind == "linear":
        target = np.nan_to_num(matrix[:, 1].astype(np.float64), nan=20.0) * 0.5 + y
        pipeline.fit(matrix, target)
        return BuiltModel(kind, pipeline, conforming_onnx(pipeline, task="regression"), rows, matrix)
    pipeline.fit(matrix, y)
    return BuiltModel(kind, pipeline, conforming_onnx(pipeline, task="binary", threshold=0.5), rows, matrix)


def reference_scores(built: BuiltModel, matrix: np.ndarray | None = None) -> np.ndarray:
    """scikit-learn's scores for ``matrix`` (default: the training rows): P(class 1), or the prediction."""
    matrix = built.matrix if matrix is None else matrix
    if built.kind == "linear":
        return built.pipeline.predict(matrix)
    return built.pipeline.predict_proba(matrix)[:, 1]
