"""A loaded model version: an onnxruntime session plus everything ``predict`` needs, computed once at load.

Raw features are mapped through the model's signature (``contract.META_SIGNATURE``): one ``[N, 1]`` graph input
per feature, float32 for numbers (None or NaN = missing, fed as NaN), strings for categories (None = missing,
fed as ``contract.MISSING_CATEGORY``, which the graph's imputer turns into the template's marker).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from . import contract
from .errors import ArtifactError, FeatureError

_ONNX_TYPES = {contract.NUMBER: "tensor(float)", contract.STRING: "tensor(string)"}
_NAN = float("nan")


@dataclass(frozen=True)
class Feature:
    """One raw feature of a model's signature: ``type`` is ``"number"`` or ``"string"``; ``categories`` is the
    vocabulary learned in training for a string feature (other values encode as unseen), or None."""

    name: str
    type: str
    categories: tuple[str, ...] | None = None


class _Buffers(threading.local):
    """Per-thread one-row input arrays, so concurrent predicts never share a buffer."""

    feeds: dict[str, np.ndarray] | None = None
    numeric: tuple[tuple[str, np.ndarray], ...] = ()
    strings: tuple[tuple[str, np.ndarray], ...] = ()


class Model:
    """A contract-conforming ONNX model ready to score raw features.

    ``Model(data)`` loads the artifact bytes into an onnxruntime session and reads its metadata; it raises
    ``ArtifactError`` when the bytes are not a loadable ONNX model or the metadata breaks the contract.
    ``predict`` scores one row of raw features, ``predict_rows`` a batch; both raise ``FeatureError`` naming
    missing, unknown or unusable features. Safe to share between threads.
    """

    def __init__(self, data: bytes, *, threads: int = 1) -> None:
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.size = len(data)
        try:
            self.session = ort.InferenceSession(data, session_options(threads), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for any unreadable graph
            raise ArtifactError(f"artifact {self.sha256[:12]} is not a loadable ONNX model: {exc}") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        self.signature = _signature(meta, self.session, self.sha256)
        self.task, self.threshold, self.score_output = _task(meta, self.session, self.sha256)
        self._column = 1 if self.task == "binary" else 0
        self._outputs = [self.score_output]
        self._names = frozenset(feature.name for feature in self.signature)
        self._numeric = tuple(f.name for f in self.signature if f.type == contract.NUMBER)
        self._strings = tuple(f.name for f in self.signature if f.type == contract.STRING)
        self._buffers = _Buffers()
        # InferenceSession.run re-checks the feed's names in Python on every call (about 2 µs for a handful
        # of inputs). Our feeds are always built from the graph's own inputs, so call the session's core
        # directly when this onnxruntime has it, and the public method otherwise: both take
        # (output_names, feeds, run_options).
        core_run = getattr(getattr(self.session, "_sess", None), "run", None)
        self._run = core_run if callable(core_run) else self.session.run

    def __repr__(self) -> str:
        return f"<Model {self.task} {self.sha256[:12]} features={[f.name for f in self.signature]}>"

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.signature]

    def feeds(self, features: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The graph inputs for one row, in this thread's reusable buffers (valid until its next call)."""
        try:
            if features.keys() != self._names:
                raise _key_error(features, self._names)
        except AttributeError:
            raise _key_error(features, self._names) from None
        buffers = self._buffers
        feeds = buffers.feeds
        if feeds is None:
            feeds = self._thread_buffers()
        for name, array in buffers.numeric:
            value = features[name]
            if value.__class__ is not float and value.__class__ is not int:
                value = _NAN if value is None else _number(name, value)
            try:
                array[0, 0] = value
            except OverflowError:
                raise FeatureError(invalid={name: "is too large for float32"}) from None
        for name, array in buffers.strings:
            value = features[name]
            array[0, 0] = value if value.__class__ is str else _category(name, value)
        return feeds

    def predict(self, features: Mapping[str, Any]) -> tuple[float, int | None]:
        """Score one row: ``(score, label)``; label is None for regression."""
        score = self._run(self._outputs, self.feeds(features), None)[0].item(self._column)  # row 0 of [1, k]
        if self.threshold is None:
            return score, None
        return score, 1 if score >= self.threshold else 0

    def predict_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[float, int | None]]:
        """Score a batch in one session run; a ``FeatureError`` names the row at fault."""
        feeds = self._new_feeds(len(rows))
        for index, features in enumerate(rows):
            try:
                if features.keys() != self._names:
                    raise _key_error(features, self._names)
                for name in self._numeric:
                    value = features[name]
                    feeds[name][index, 0] = _NAN if value is None else _number(name, value)
                for name in self._strings:
                    feeds[name][index, 0] = _category(name, features[name])
            except FeatureError as exc:
                raise FeatureError(missing=exc.missing, unknown=exc.unknown, invalid=exc.invalid, row=index) from None
            except AttributeError:
                raise FeatureError(
                    invalid={"(row)": "is not a mapping of feature names to values"}, row=index
                ) from None
        scores = self._run(self._outputs, feeds, None)[0][:, self._column].tolist()
        if self.threshold is None:
            return [(score, None) for score in scores]
        return [(score, int(score >= self.threshold)) for score in scores]

    def _thread_buffers(self) -> dict[str, np.ndarray]:
        buffers = self._buffers
        feeds = self._new_feeds(1)
        buffers.numeric = tuple((name, feeds[name]) for name in self._numeric)
        buffers.strings = tuple((name, feeds[name]) for name in self._strings)
        buffers.feeds = feeds
        return feeds

    def _new_feeds(self, rows: int) -> dict[str, np.ndarray]:
        feeds = {name: np.empty((rows, 1), dtype=np.float32) for name in self._numeric}
        feeds.update({name: np.empty((rows, 1), dtype=object) for name in self._strings})
        return feeds


def session_options(threads: int = 1) -> ort.SessionOptions:
    """The options of every session the client opens: ``threads`` threads for one operator, one for the graph.

    onnxruntime's CPU memory arena and memory pattern stay on (its defaults). Turning them off was measured
    (bench/client_memory.py's models, LR, GBDT and 22 MiB random forests): it saved nothing resident, since
    these graphs' intermediate tensors are a few KiB per row, and turning the memory pattern off made
    one-row predictions of the forests slower."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


def release_freed_memory() -> None:
    """Hand the heap pages freed while loading models back to the operating system (glibc; elsewhere a no-op).

    Parsing an ONNX graph allocates a great many small blocks: loading a 22 MiB tree ensemble leaves about
    180 MiB of freed heap that glibc keeps mapped unless asked to trim it."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return None


def _key_error(features: Any, names: frozenset[str]) -> FeatureError:
    if not isinstance(features, Mapping):
        return FeatureError(
            invalid={"(features)": f"must be a mapping of feature names to values, got {type(features).__name__}"}
        )
    given = set(features.keys())
    return FeatureError(missing=names - given, unknown=given - names)


def _number(name: str, value: Any) -> float:
    if isinstance(value, str | bytes):
        raise FeatureError(invalid={name: f"expects a number (or None when missing), got the string {value!r}"})
    try:
        return float(value)
    except OverflowError:
        raise FeatureError(invalid={name: "is too large for float32"}) from None
    except (TypeError, ValueError):
        raise FeatureError(
            invalid={name: f"expects a number (or None when missing), got {type(value).__name__}"}
        ) from None


def _category(name: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return contract.MISSING_CATEGORY
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return str(int(value))
    raise FeatureError(invalid={name: f"expects a string category (or None when missing), got {type(value).__name__}"})


def _signature(meta: Mapping[str, str], session: ort.InferenceSession, sha256: str) -> tuple[Feature, ...]:
    where = f"artifact {sha256[:12]}"
    if meta.get(contract.META_FORMAT_VERSION) != contract.FORMAT_VERSION:
        raise ArtifactError(
            f"{where}: {contract.META_FORMAT_VERSION} is {meta.get(contract.META_FORMAT_VERSION)!r}, expected {contract.FORMAT_VERSION!r}"
        )
    try:
        items = json.loads(meta[contract.META_SIGNATURE])
        signature = tuple(
            Feature(
                str(item["name"]),
                item["type"],
                tuple(str(c) for c in item["categories"]) if item.get("categories") is not None else None,
            )
            for item in items
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{where}: {contract.META_SIGNATURE} is missing or malformed ({exc})") from exc
    inputs = session.get_inputs()
    if [f.name for f in signature] != [i.name for i in inputs] or len(set(f.name for f in signature)) != len(signature):
        raise ArtifactError(
            f"{where}: the signature {[f.name for f in signature]} does not match the graph inputs {[i.name for i in inputs]}"
        )
    for feature, graph_input in zip(signature, inputs, strict=True):
        if _ONNX_TYPES.get(feature.type) != graph_input.type or len(graph_input.shape) != 2:
            raise ArtifactError(
                f"{where}: feature {feature.name!r} is declared {feature.type!r} but the graph takes {graph_input.type} {graph_input.shape}"
            )
    return signature


def _task(meta: Mapping[str, str], session: ort.InferenceSession, sha256: str) -> tuple[str, float | None, str]:
    where = f"artifact {sha256[:12]}"
    task = meta.get(contract.META_TASK)
    if task not in ("binary", "regression"):
        raise ArtifactError(f"{where}: {contract.META_TASK} is {task!r}, expected 'binary' or 'regression'")
    threshold = None
    if task == "binary":
        try:
            threshold = float(meta[contract.META_THRESHOLD])
        except (KeyError, ValueError):
            raise ArtifactError(f"{where}: a binary model needs a numeric {contract.META_THRESHOLD}") from None
    score_output = meta.get(contract.META_SCORE_OUTPUT)
    outputs = {output.name: output for output in session.get_outputs()}
    if score_output is None or score_output not in outputs:
        raise ArtifactError(
            f"{where}: {contract.META_SCORE_OUTPUT} {score_output!r} is not a graph output ({sorted(outputs)})"
        )
    return task, threshold, score_output
