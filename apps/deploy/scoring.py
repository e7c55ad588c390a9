"""Scoring on the server, with the client SDK's own model class: one implementation of feature mapping and
scoring for ``POST …/predict/`` and every ``ModelClient``.

Models follow ``mlab_client.contract``: one graph input per raw feature, the signature and task in the
model's metadata. Loaded models (``mlab_client.Model``) are cached per artifact sha256 in the process.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import mlab_client
from apps.artifacts.models import Artifact
from apps.artifacts.storage import artifact_read
from mlab_client import contract
from mlab_client.routing import Router

from .configs import config_body, config_etag
from .models import ConfigEntry

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
    # onnx (protobuf and its schemas) takes a while to import and only registration reads a model this way:
    # web processes that never register a version do not pay for it.
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


def feature_error_messages(error: mlab_client.FeatureError) -> list[str]:
    """The SDK's feature error as the API's 400 lists it: one message per problem, each naming its features."""
    messages = []
    for label, names in (("missing", error.missing), ("unknown", error.unknown)):
        if names:
            messages.append(f"{label} feature{'s' if len(names) > 1 else ''}: {', '.join(names)}")
    messages.extend(f"{name}: {why}" for name, why in error.invalid.items())
    return messages


@dataclass(frozen=True)
class LoadedModel:
    """A version's model as the server scores it: the SDK's ``Model`` (the same mapping and session a client
    uses), with the SDK's errors turned into the API's."""

    model: mlab_client.Model

    @property
    def signature(self) -> tuple[mlab_client.Feature, ...]:
        return self.model.signature

    def score(self, features: Mapping[str, object]) -> tuple[float, int | None]:
        """``(score, label)`` of one row of raw features; FeatureError names every feature at fault."""
        try:
            score, label = self.model.predict(features)
        except mlab_client.FeatureError as exc:
            raise FeatureError(feature_error_messages(exc)) from None
        if not math.isfinite(score):
            raise FeatureError(["the model gave no score for these values (a missing number it cannot fill in?)"])
        return score, label


_sessions: OrderedDict[str, LoadedModel] = OrderedDict()
_sessions_lock = threading.Lock()


def model_load(artifact: Artifact) -> LoadedModel:
    """The loaded model of an artifact, cached per sha256 (the few most recently used). Raises
    ModelFormatError when the bytes are not a model that follows the contract."""
    with _sessions_lock:
        loaded = _sessions.get(artifact.sha256)
        if loaded is not None:
            _sessions.move_to_end(artifact.sha256)
            return loaded
    try:
        loaded = LoadedModel(mlab_client.Model(artifact_read(artifact)))
    except mlab_client.ArtifactError as exc:
        raise ModelFormatError(str(exc)) from None
    with _sessions_lock:
        _sessions[artifact.sha256] = loaded
        while len(_sessions) > SESSION_CACHE_SIZE:
            _sessions.popitem(last=False)
    return loaded


ROUTER_CACHE_SIZE = 32
_routers: OrderedDict[str, Router] = OrderedDict()
_routers_lock = threading.Lock()


def router_for(entry: ConfigEntry) -> Router:
    """The SDK's router for a published config, built once per config content (its ETag is a digest of the
    body): building one precomputes the owner of all 10,000 buckets, too much to redo on every prediction."""
    key = entry.etag or config_etag(config_body(entry.content))
    with _routers_lock:
        router = _routers.get(key)
        if router is not None:
            _routers.move_to_end(key)
            return router
    router = Router.from_config(entry.content)
    with _routers_lock:
        _routers[key] = router
        while len(_routers) > ROUTER_CACHE_SIZE:
            _routers.popitem(last=False)
    return router
