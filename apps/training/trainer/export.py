"""ONNX export (skl2onnx) with Mlab's metadata, scoring through onnxruntime, and the parity check.

LightGBM's classifier is converted by onnxmltools' converter, registered here with skl2onnx, so that a
pipeline ending in it converts like any other: one graph from the raw features to the probabilities, at the
opsets of TARGET_OPSET. (onnxmltools' own ``convert_lightgbm`` refuses an opset above 15 with onnx 1.23;
called through skl2onnx, the converter adds ai.onnx.ml nodes only and the graph keeps opset 17.)
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
import onnxruntime
from lightgbm import Booster, LGBMClassifier
from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
from skl2onnx import to_onnx, update_registered_converter
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
from sklearn.pipeline import Pipeline

from apps.templates.nodes import Task
from mlab_client import contract

from .data import FeatureBlocks
from .errors import ExportError, ParityError
from .pipeline import FillMissing
from .plan import LocalPlan

# Opsets every onnxruntime since 1.14 runs; client processes may lag the server by a few releases.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
PARITY_TOLERANCE = 1e-5
CHUNK_ROWS = 65_536


class _Float32Splits:
    """What onnxmltools' converter reads of a fitted LGBMClassifier, with the booster's split thresholds
    rounded down to float32 values.

    ONNX holds thresholds as float32. Rounded to the nearest float32, a threshold just below a value can land
    on that value and send it the other way (measured: LightGBM split a price at 12.2199997901917, which rounds
    to 12.22f, the very price of the row it then misrouted: 0.006 in probability). Rounded down, ``x <= t``
    and ``x <= t32`` agree for every float32 ``x``, which is all the model is ever fed: the same model, exactly.
    """

    def __init__(self, model: LGBMClassifier):
        self.classes_, self.boosting_type = model.classes_, model.boosting_type
        self.booster_ = Booster(model_str=_float32_thresholds(model.booster_.model_to_string()))


def _float32_thresholds(model_text: str) -> str:
    # The header's tree_sizes (each tree's length in bytes, for parsing in parallel) no longer hold once the
    # numbers change; without it LightGBM parses the trees one after the other.
    lines = [line for line in model_text.split("\n") if not line.startswith("tree_sizes=")]
    for i, line in enumerate(lines):
        if not line.startswith("threshold="):
            continue
        decision = next(d for d in lines[i + 1 :] if d.startswith("decision_type="))
        categorical = np.array(decision.split("=", 1)[1].split(), dtype=np.int64) & 1  # LightGBM's category bit
        thresholds = np.array(line.split("=", 1)[1].split(), dtype=np.float64)
        nearest = thresholds.astype(np.float32)
        down = np.where(nearest > thresholds, np.nextafter(nearest, np.float32(-np.inf)), nearest)
        snapped = np.where(categorical == 1, thresholds, down.astype(np.float64))
        lines[i] = "threshold=" + " ".join(repr(float(t)) for t in snapped)
    return "\n".join(lines)


def _convert_lightgbm(scope: Any, operator: Any, container: Any) -> None:
    model = operator.raw_operator
    operator.raw_operator = _Float32Splits(model)
    try:
        convert_lightgbm(scope, operator, container)
    finally:
        operator.raw_operator = model


update_registered_converter(
    LGBMClassifier,
    "MlabLightGbmClassifier",
    calculate_linear_classifier_output_shapes,
    _convert_lightgbm,
    options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
)
# FillMissing carries what a fitted SimpleImputer gives this converter: one ONNX Imputer node.
update_registered_converter(
    FillMissing, "MlabFillMissing", calculate_sklearn_imputer_output_shapes, convert_sklearn_imputer
)


def export(plan: LocalPlan, pipeline: Pipeline, signature: list[dict[str, Any]]) -> bytes:
    """The fitted pipeline as ONNX: one [None, 1] input per raw feature, named like it (float for numbers,
    string for categories), and the metadata of mlab_client.contract."""
    inputs = [(name, FloatTensorType([None, 1])) for name in plan.numeric]
    inputs += [(name, StringTensorType([None, 1])) for name in plan.categorical]
    binary = plan.task == Task.BINARY
    options = {id(pipeline.named_steps["model"]): {"zipmap": False}} if binary else None
    # Outputs are named up front, away from the features: skl2onnx would otherwise rename an input that
    # is called like its default output ("variable", "label"), and the contract names inputs by feature.
    taken = set(plan.features)
    outputs = [_free_name(name, taken) for name in (("label", "probabilities") if binary else ("prediction",))]
    model = to_onnx(
        pipeline,
        initial_types=inputs,
        final_types=[(name, None) for name in outputs],
        options=options,
        target_opset=TARGET_OPSET,
    )
    if [i.name for i in model.graph.input] != plan.features:
        raise ExportError(f"The exported model's inputs {[i.name for i in model.graph.input]} are not the features.")
    score_output = outputs[-1]  # binary: probabilities [N, 2]; regression: prediction [N, 1]
    metadata = {
        contract.META_SIGNATURE: json.dumps(signature, separators=(",", ":")),
        contract.META_TASK: plan.task.value,
        contract.META_SCORE_OUTPUT: score_output,
        contract.META_FORMAT_VERSION: contract.FORMAT_VERSION,
    }
    if plan.task == Task.BINARY:
        metadata[contract.META_THRESHOLD] = repr(float(plan.evaluation["threshold"]))
    onnx.helper.set_model_props(model, metadata)
    model.doc_string = f"Mlab model: template {plan.template or '?'}, {plan.train_node}."
    return model.SerializeToString()


def _free_name(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    return name


def score_output(model_bytes: bytes) -> str:
    model = onnx.load_model_from_string(model_bytes)
    return {prop.key: prop.value for prop in model.metadata_props}[contract.META_SCORE_OUTPUT]


def onnx_scores(model_bytes: bytes, plan: LocalPlan, blocks: FeatureBlocks) -> np.ndarray:
    """What onnxruntime gives for ``blocks``: probabilities [N, 2] (binary) or predictions [N] (regression),
    computed in chunks so that memory stays bounded."""
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = plan.threads
    # Threads that spin while they wait take the cores from those at work where cores are shared (measured on
    # two busy cores: 2.3 s spinning, 1.2 s not, for 200,000 rows).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    output = score_output(model_bytes)
    parts = []
    for start in range(0, len(blocks), CHUNK_ROWS):
        chunk = blocks.rows(start, start + CHUNK_ROWS)
        parts.append(session.run([output], chunk.onnx_feed(plan))[0])
    scores = np.concatenate(parts) if parts else np.empty((0, 2 if plan.task == Task.BINARY else 1))
    return scores if plan.task == Task.BINARY else scores.reshape(-1)


def sklearn_scores(plan: LocalPlan, pipeline: Pipeline, blocks: FeatureBlocks) -> np.ndarray:
    if plan.task == Task.BINARY:
        return pipeline.predict_proba(blocks)
    return np.asarray(pipeline.predict(blocks), dtype=np.float64).reshape(-1)


def parity(expected: np.ndarray, actual: np.ndarray, *, tolerance: float = PARITY_TOLERANCE) -> float:
    """The largest absolute difference between scikit-learn's and onnxruntime's scores; raises ParityError
    above ``tolerance``."""
    if expected.shape != actual.shape:
        raise ParityError(
            f"The exported model gives {actual.shape} scores where the trained one gives {expected.shape}."
        )
    difference = float(np.max(np.abs(expected - actual), initial=0.0))
    if not difference <= tolerance:  # also catches NaN
        raise ParityError(
            f"The exported model does not give the same scores as the trained model (largest difference "
            f"{difference:.3g}, allowed {tolerance:g}), so it cannot be published. Please report this run."
        )
    return difference
