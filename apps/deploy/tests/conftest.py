"""Fixtures of the deploy tests: succeeded runs with real (or plain) artifacts, scenes, client tokens."""

from __future__ import annotations

import itertools

import pytest

from apps.deploy.services import client_token_create, scene_create
from apps.training.models import DataSource, TrainingRun
from tests.factories import TrainingRunFactory

_runs = itertools.count(1)


@pytest.fixture
def datasource(db):
    return DataSource.objects.create(name="warehouse", kind=DataSource.Kind.DUCKDB, options={"path": ":memory:"})


@pytest.fixture
def make_run(builtin_templates, datasource, user):
    """make_run(data=None, owner=alice, status=succeeded, metrics=…) → a TrainingRun whose artifact holds
    ``data`` (default: a real ONNX model, a different one per seed); runs that did not succeed have none."""

    def make(
        *,
        data: bytes | None = None,
        seed: int = 0,
        owner=None,
        status=TrainingRun.Status.SUCCEEDED,
        metrics=None,
        format: str = "onnx",
    ):
        extra = {} if data is None else {"artifact_bytes": data}
        if status != TrainingRun.Status.SUCCEEDED:
            extra["artifact"] = None
        return TrainingRunFactory(
            owner=owner or user,
            datasource=datasource,
            seed=seed,
            artifact_format=format,
            status=status,
            metrics={"auc": 0.8 + next(_runs) % 10 / 100} if metrics is None else metrics,
            **extra,
        )

    return make


@pytest.fixture
def scene(db, user):
    return scene_create(name="seller-union-ctr", description="Click-through of seller union ads", user=user)


@pytest.fixture
def client_token(scene, user):
    """(row, key) of a client token for ``scene``."""
    return client_token_create(name="ads-server", scenes=[scene], user=user)


@pytest.fixture
def run_jobs():
    """run_jobs() → runs every queued RQ job in this process (same database transaction), returns them."""
    import django_rq
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    def run():
        queue = django_rq.get_queue("default")
        jobs = queue.get_jobs()
        django_rq.get_worker("default", worker_class=SimpleWorker, serializer=JSONSerializer).work(burst=True)
        for job in jobs:
            job.refresh()
        return jobs

    return run


@pytest.fixture
def versions(scene, make_run, user):
    """Versions 1, 2 and 3 of ``scene``, three different real models."""
    from apps.deploy.services import model_version_register

    return [model_version_register(run=make_run(seed=seed), scene=scene, user=user) for seed in (1, 2, 3)]


@pytest.fixture(autouse=True)
def _forget_process_memos():
    """Each test starts with empty in-process memos (published configs, client token scopes): the database
    and Redis they mirror are emptied between tests too."""
    from apps.deploy.configs import config_memo
    from apps.deploy.selectors import _client_token_scopes, _scene_ids

    config_memo.clear()
    _client_token_scopes.clear()
    _scene_ids.clear()
    yield
