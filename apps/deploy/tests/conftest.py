"""Fixtures of the deploy tests: succeeded runs with real (or plain) artifacts, scenes, client tokens."""

from __future__ import annotations

import itertools

import pytest

from apps.deploy.artifacts import artifact_store
from apps.deploy.services import client_token_create, scene_create
from apps.training.models import DataSource, TrainingRun

from .onnx_models import binary_model

_runs = itertools.count(1)


@pytest.fixture
def datasource(db):
    return DataSource.objects.create(name="warehouse", engine=DataSource.Engine.DUCKDB, options={"path": ":memory:"})


@pytest.fixture
def make_run(builtin_templates, datasource, user):
    """make_run(data=None, owner=alice, status=succeeded, metrics=…) → a TrainingRun whose artifact holds
    ``data`` (default: a real ONNX model, a different one per seed)."""

    def make(
        *, data: bytes | None = None, seed: int = 0, owner=None, status=TrainingRun.Status.SUCCEEDED, metrics=None
    ):
        artifact = None
        if status == TrainingRun.Status.SUCCEEDED:
            artifact = artifact_store(data if data is not None else binary_model(seed).onnx_bytes, format="onnx")
        return TrainingRun.objects.create(
            template=builtin_templates["binary-lr"],
            owner=owner or user,
            datasource=datasource,
            params={},
            payload={},
            status=status,
            metrics={"auc": 0.8 + next(_runs) % 10 / 100} if metrics is None else metrics,
            artifact=artifact,
        )

    return make


@pytest.fixture
def scene(db, user):
    return scene_create(name="seller-union-ctr", description="Click-through of seller union ads", user=user)


@pytest.fixture
def client_token(scene, user):
    """(row, key) of a client token for ``scene``."""
    return client_token_create(name="ads-server", scenes=[scene], user=user)
