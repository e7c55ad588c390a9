"""factory_boy factories shared by the tests and the benchmarks: the one way they make a finished training run
without training (a stored artifact standing for its model)."""

from __future__ import annotations

import factory
from factory.django import DjangoModelFactory

from apps.artifacts.storage import CHUNK_SIZE, artifact_store
from apps.deploy.tests.onnx_models import binary_model
from apps.templates.models import AlgorithmTemplate
from apps.templates.services import builtin_templates_sync, template_create
from apps.training.models import DataSource, TrainingRun


def builtin_template(slug: str) -> AlgorithmTemplate:
    template = AlgorithmTemplate.objects.filter(slug=slug).first()
    return template or {t.slug: t for t in builtin_templates_sync()}[slug]


MINIMAL_CHAIN = (
    {"key": "sample", "type": "sample.sql"},
    {"key": "train", "type": "train.gbdt"},
    {"key": "evaluate", "type": "evaluate.binary"},
)


def private_template(owner, *, slug: str, name: str = "", published: bool = False) -> AlgorithmTemplate:
    """A binary template of ``owner``'s with the shortest runnable chain (sample → train → evaluate)."""
    return template_create(
        slug=slug, name=name or slug, task_type="binary", owner=owner, published=published, nodes=MINIMAL_CHAIN
    )


class DataSourceFactory(DjangoModelFactory):
    """A DuckDB source nothing reads from (runs made by the factory never execute)."""

    class Meta:
        model = DataSource
        django_get_or_create = ("name",)

    name = "warehouse"
    kind = DataSource.Kind.DUCKDB
    options = factory.LazyFunction(lambda: {"path": ":memory:"})


class TrainingRunFactory(DjangoModelFactory):
    """A succeeded run of the built-in ``binary-lr`` template whose artifact holds ``artifact_bytes`` (by
    default a real ONNX model of the contract, ``binary_model(seed)``). ``owner`` is required.

    ``TrainingRunFactory(owner=u, seed=2)``; ``TrainingRunFactory(owner=u, artifact_bytes=b"…", artifact_format=
    "bin", chunk_size=1024)``; ``TrainingRunFactory(owner=u, status=TrainingRun.Status.FAILED, artifact=None)``.
    """

    class Meta:
        model = TrainingRun

    class Params:
        seed = 0
        artifact_bytes = factory.LazyAttribute(lambda run: binary_model(run.seed).onnx_bytes)
        artifact_format = "onnx"
        chunk_size = CHUNK_SIZE

    template = factory.LazyFunction(lambda: builtin_template("binary-lr"))
    datasource = factory.SubFactory(DataSourceFactory)
    params = factory.LazyFunction(dict)
    payload = factory.LazyFunction(dict)
    status = TrainingRun.Status.SUCCEEDED
    metrics = factory.LazyFunction(lambda: {"auc": 0.8})
    artifact = factory.LazyAttribute(
        lambda run: artifact_store(run.artifact_bytes, format=run.artifact_format, chunk_size=run.chunk_size)
    )
