"""Predicting for a scene on the server: route the unit as the client SDK does, score with the SDK's model."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from apps.artifacts.storage import ArtifactCorrupt
from mlab_client.contract import BUCKETS

from ..models import ConfigEntry, ModelVersion, Scene
from ..scoring import ModelFormatError, model_load, router_for


class PredictionRefused(Exception):
    """Why no score can be given (in plain words)."""


class SceneNotPublished(PredictionRefused):
    """The scene has no published deployment to route by."""


class VersionCorrupt(PredictionRefused):
    """The routed version's artifact fails its checksums (reported, never served)."""


class VersionNotScorable(PredictionRefused):
    """The routed version's artifact is not a model this server can score."""


@dataclass(frozen=True)
class Prediction:
    version: int
    score: float
    label: int | None
    revision: int


def scene_predict(*, scene: Scene, features: Mapping[str, object], unit_id: str | None = None) -> Prediction:
    """Score one row of raw features with the version ``unit_id`` is routed to under the published config (the
    same routing as the client SDK); without a unit id a random bucket is drawn.

    Raises SceneNotPublished, VersionCorrupt or VersionNotScorable, and FeatureError naming every feature at
    fault."""
    entry = ConfigEntry.objects.filter(scene=scene).first()
    if entry is None or entry.revision == 0:
        raise SceneNotPublished(f"Scene {scene.name!r} has no published deployment yet.")
    router = router_for(entry)
    number = router.version_for(unit_id) if unit_id is not None else router.version_of_bucket(random.randrange(BUCKETS))
    version = ModelVersion.objects.select_related("artifact").get(scene=scene, version=number)
    try:
        model = model_load(version.artifact)
    except ArtifactCorrupt:
        raise VersionCorrupt(f"Version {number}'s artifact is corrupt; it was reported.") from None
    except ModelFormatError as exc:
        raise VersionNotScorable(f"Version {number} cannot be scored here: {exc}.") from None
    score, label = model.score(features)
    return Prediction(version=number, score=score, label=label, revision=entry.revision)
