"""The artifact tables moved from the deploy app to this one: a database holding runs, versions and chunked
artifacts in the old schema keeps every row, key and byte through the migration (on SQLite and MariaDB,
whichever the suite runs on)."""

from __future__ import annotations

import hashlib

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apps.artifacts.models import Artifact
from apps.artifacts.storage import artifact_db_chunks
from apps.deploy.models import ModelVersion
from apps.training.models import TrainingRun

# The schema as it was before the move: every app at its last migration from then.
BEFORE = [
    ("deploy", "0003_tokens_hashed_authors_optional"),
    ("training", "0002_run_report_and_transfer_fence"),
    ("artifacts", None),
]


def _migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor


def _old_schema_with_data() -> dict:
    """Migrate back to BEFORE and write a run, its artifact (two chunks) and a version with historical models."""
    executor = _migrate(BEFORE)
    old = executor._create_project_state(with_applied_migrations=True).apps
    content_type = old.get_model("contenttypes", "ContentType")
    # A database from before the move has no content types of the artifacts app (the test database does).
    content_type.objects.filter(app_label="artifacts").delete()
    artifact_type, _ = content_type.objects.get_or_create(app_label="deploy", model="artifact")
    permission = old.get_model("auth", "Permission").objects.create(
        content_type=artifact_type, codename="audit_artifact", name="Can audit artifact"
    )
    user = old.get_model("auth", "User").objects.create(username="old-schema")
    template = old.get_model("algo_templates", "AlgorithmTemplate").objects.create(
        slug="old-lr", name="Old LR", task_type="binary"
    )
    source = old.get_model("training", "DataSource").objects.create(name="old", engine="duckdb", options={})
    pieces = [b"\x00onnx-bytes-" * 100, b"tail\xff" * 7]
    data = b"".join(pieces)
    artifact = old.get_model("deploy", "Artifact").objects.create(
        sha256=hashlib.sha256(data).hexdigest(), size=len(data), chunk_size=len(pieces[0]), chunk_count=2
    )
    for index, piece in enumerate(pieces):
        old.get_model("deploy", "ArtifactChunk").objects.create(
            artifact=artifact, index=index, sha256=hashlib.sha256(piece).hexdigest(), data=piece
        )
    run = old.get_model("training", "TrainingRun").objects.create(
        template=template, owner=user, datasource=source, params={}, payload={}, status="succeeded", artifact=artifact
    )
    scene = old.get_model("deploy", "Scene").objects.create(name="old-scene", salt="0123456789abcdef")
    version = old.get_model("deploy", "ModelVersion").objects.create(
        scene=scene, version=1, run=run, artifact=artifact, size=len(data), sha256=artifact.sha256
    )
    return {
        "data": data,
        "artifact": artifact.pk,
        "run": run.pk,
        "version": version.pk,
        "content_type": artifact_type.pk,
        "permission": permission.pk,
    }


@pytest.mark.django_db(transaction=True)
def test_the_move_keeps_every_artifact_byte_and_every_link():
    before = _old_schema_with_data()
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    artifact = Artifact.objects.get(pk=before["artifact"])
    assert Artifact._meta.db_table == "artifacts_artifact"
    assert b"".join(artifact_db_chunks(artifact)) == before["data"]  # every chunk there and matching its sha256
    assert TrainingRun.objects.get(pk=before["run"]).artifact_id == artifact.pk
    assert ModelVersion.objects.get(pk=before["version"]).artifact_id == artifact.pk
    assert list(artifact.runs.values_list("pk", flat=True)) == [before["run"]]

    moved = ContentType.objects.get(pk=before["content_type"])
    assert (moved.app_label, moved.model) == ("artifacts", "artifact")
    assert Permission.objects.get(pk=before["permission"]).content_type_id == moved.pk


@pytest.mark.django_db(transaction=True)
def test_the_move_can_be_undone_without_losing_rows():
    before = _old_schema_with_data()
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    executor = _migrate(BEFORE)
    old = executor._create_project_state(with_applied_migrations=True).apps
    chunks = old.get_model("deploy", "ArtifactChunk").objects.filter(artifact_id=before["artifact"]).order_by("index")
    assert b"".join(bytes(c.data) for c in chunks) == before["data"]
    assert old.get_model("deploy", "ModelVersion").objects.get(pk=before["version"]).artifact_id == before["artifact"]
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
