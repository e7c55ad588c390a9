"""The config a client polls: built from a deployment and the previously published allocation."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from django.urls import reverse

from mlab_client.contract import BUCKETS
from mlab_client.routing import allocate

from .models import Deployment, ModelVersion


def config_content(*, deployment: Deployment, versions: Iterable[ModelVersion], previous: dict) -> dict:
    """``scene, revision, salt, buckets, allocation ([start, end, version], half-open), versions ([{version,
    sha256, size, format, url}]), overrides``. The allocation moves as few buckets as possible away from
    ``previous`` (the content last published)."""
    scene = deployment.scene
    weights = {row["version"]: row["weight"] for row in deployment.splits if row["weight"] > 0}
    allocation = allocate(weights, previous=previous.get("allocation", []))
    by_number = {version.version: version for version in versions}
    needed = sorted(set(weights) | set(deployment.overrides.values()))
    return {
        "scene": scene.name,
        "revision": deployment.revision,
        "salt": scene.salt,
        "buckets": BUCKETS,
        "allocation": [list(bucket_range) for bucket_range in allocation],
        "versions": [
            {
                "version": number,
                "sha256": by_number[number].sha256,
                "size": by_number[number].size,
                "format": by_number[number].format,
                "url": reverse("api:scene-version-artifact", kwargs={"name": scene.name, "version": number}),
            }
            for number in needed
        ],
        "overrides": dict(deployment.overrides),
    }


def versions_needed(deployment: Deployment) -> set[int]:
    """The versions a client must load: those with a positive weight, and those named by overrides."""
    return {row["version"] for row in deployment.splits if row["weight"] > 0} | set(deployment.overrides.values())


def config_body(content: dict) -> bytes:
    """The canonical JSON of a config: what the endpoint sends, and what the ETag is computed from."""
    return json.dumps(content, separators=(",", ":"), sort_keys=True).encode()


def config_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
