"""Scoring on the server: read a model's signature, map raw features to its inputs, run it in onnxruntime.

Models follow ``mlab_client.contract``: one graph input per raw feature, the signature and task in the
model's metadata. Inference sessions are cached per artifact sha256 in the process.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mlab_client import contract

from .artifacts import artifact_read
from .models import Artifact

SESSION_CACHE_SIZE = 8


class FeatureError(ValueError):
    """Features that do not fit the model's signature; ``errors`` are messages naming each feature."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class ModelFormatError(ValueError):
    """The artifact is not a model this server can score (not ONNX, or without Mlab's metadata)."""


def onnx_metadata(data: bytes) -> tuple[dict[str, str], list[dict]]:
    """The metadata props and the signature of an ONNX model. Without ``mlab.signature`` the signature is
    read from the graph inputs (string tensors are categorical, the rest numeric)."""
    import onnx
    from onnx import TensorProto

    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf raises several types for bytes that are not a model
        raise ModelFormatError("the artifact is not a valid ONNX model") from exc
    props = {prop.key: prop.value for prop in model.metadata_props}
    if contract.META_SIGNATURE in props:
        try:
            signature = json.loads(props[contract.META_SIGNATURE])
        except ValueError as exc:
            raise ModelFormatError(f"the model's {contract.META_SIGNATURE} is not JSON") from exc
        if not isinstance(signature, list) or not all(isinstance(f, dict) and "name" in f for f in signature):
            raise ModelFormatError(f"the model's {contract.META_SIGNATURE} is not a list of features")
        return props, signature
    initializers = {init.name for init in model.graph.initializer}
    signature = []
    for graph_input in model.graph.input:
        if graph_input.name in initializers:
            continue
        elem = graph_input.type.tensor_type.elem_type
        signature.append(
            {"name": graph_input.name, "type": contract.STRING if elem == TensorProto.STRING else "number"}
        )
    return props, signature


def features_to_inputs(signature: list[dict], features: Mapping[str, object]) -> dict[str, np.ndarray]:
    """Map one row of raw features to the model's inputs: float32 ``[1, 1]`` for numbers (None → NaN),
    string ``[1, 1]`` for categories (None → the missing marker). Raises FeatureError naming every missing,
    unknown or mistyped feature."""
    names = [feature["name"] for feature in signature]
    errors = []
    missing = [name for name in names if name not in features]
    unknown = sorted(set(features) - set(names))
    if missing:
        errors.append(f"missing feature{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    if unknown:
        errors.append(f"unknown feature{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
    inputs: dict[str, np.ndarray] = {}
    for feature in signature:
        name = feature["name"]
        if name not in features:
            continue
        value = features[name]
        if feature.get("type") == contract.STRING:
            if value is None:
                value = contract.MISSING_CATEGORY
            elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                value = str(value)
            if not isinstance(value, str):
                errors.append(f"{name}: expected a category (text), got {type(value).__name__}")
                continue
            inputs[name] = np.array([[value]], dtype=object)
        else:
            if value is None:
                value = math.nan
            if isinstance(value, bool) or not isinstance(value, int | float):
                errors.append(f"{name}: expected a number, got {type(value).__name__}")
                continue
            inputs[name] = np.array([[value]], dtype=np.float32)
    if errors:
        raise FeatureError(errors)
    return inputs


@dataclass(frozen=True)
class LoadedModel:
    session: object
    signature: list[dict]
    task: str
    threshold: float
    score_output: str

    def score(self, features: Mapping[str, object]) -> tuple[float, int | None]:
        inputs = features_to_inputs(self.signature, features)
        (output,) = self.session.run([self.score_output], inputs)
        output = np.asarray(output)
        score = float(output.reshape(len(output), -1)[0, -1] if self.task == "binary" else output.reshape(-1)[0])
        if not math.isfinite(score):
            raise FeatureError(["the model gave no score for these values (a missing number it cannot fill in?)"])
        return score, (int(score >= self.threshold) if self.task == "binary" else None)


_sessions: OrderedDict[str, LoadedModel] = OrderedDict()
_sessions_lock = threading.Lock()


def model_load(artifact: Artifact) -> LoadedModel:
    """The inference session of an artifact, cached per sha256 (the few most recently used)."""
    with _sessions_lock:
        loaded = _sessions.get(artifact.sha256)
        if loaded is not None:
            _sessions.move_to_end(artifact.sha256)
            return loaded
    loaded = _model_from_bytes(artifact_read(artifact))
    with _sessions_lock:
        _sessions[artifact.sha256] = loaded
        while len(_sessions) > SESSION_CACHE_SIZE:
            _sessions.popitem(last=False)
    return loaded


def _model_from_bytes(data: bytes) -> LoadedModel:
    import onnxruntime

    props, signature = onnx_metadata(data)
    task = props.get(contract.META_TASK)
    if task not in ("binary", "regression"):
        raise ModelFormatError(f"the model has no {contract.META_TASK} of 'binary' or 'regression'")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    outputs = [output.name for output in session.get_outputs()]
    score_output = props.get(contract.META_SCORE_OUTPUT) or outputs[-1]
    if score_output not in outputs:
        raise ModelFormatError(f"the model has no output {score_output!r}")
    threshold = float(props.get(contract.META_THRESHOLD, 0.5))
    return LoadedModel(session, signature, task, threshold, score_output)
