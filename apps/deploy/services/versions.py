"""Model versions: a succeeded run registered into a scene, numbered 1, 2, 3… (never reused)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.artifacts.storage import artifact_read
from apps.training.models import TrainingRun

from ..models import ModelVersion, Scene
from ..scoring import ModelFormatError, onnx_metadata
from .scenes import scene_create


@transaction.atomic
def model_version_register_or_get(*, run: TrainingRun, scene: Scene, user) -> tuple[ModelVersion, bool]:
    """Register ``run`` as the scene's next version; the existing version when the run is already registered
    there (then the bool is False). The number comes from the scene's counter under a row lock, so concurrent
    registrations never share or reuse a number. Raises ValidationError on ``run`` unless it succeeded with
    an artifact (and, for ONNX, a readable model)."""
    existing = ModelVersion.objects.filter(scene=scene, run=run).first()
    if existing is not None:
        return existing, False
    run = TrainingRun.objects.select_related("artifact").get(pk=run.pk)
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise ValidationError(
            {"run": [f"Run {run.pk} has status {run.status}; only a succeeded run can become a model version."]}
        )
    artifact = run.artifact
    if artifact is None:
        raise ValidationError({"run": [f"Run {run.pk} succeeded but stored no model artifact."]})
    signature: list = []
    if artifact.format == "onnx":
        try:
            _, signature = onnx_metadata(artifact_read(artifact))
        except ModelFormatError as exc:
            raise ValidationError({"run": [f"Run {run.pk}: {exc}."]}) from exc
    # Numbering happens under the scene's row lock; a concurrent registration of the same run is seen here.
    scene = Scene.objects.select_for_update().get(pk=scene.pk)
    existing = ModelVersion.objects.filter(scene=scene, run=run).first()
    if existing is not None:
        return existing, False
    scene.last_version += 1
    scene.full_clean()
    scene.save(update_fields=["last_version"])
    version = ModelVersion(
        scene=scene,
        version=scene.last_version,
        run=run,
        artifact=artifact,
        format=artifact.format,
        size=artifact.size,
        sha256=artifact.sha256,
        metrics=run.metrics or {},
        signature=signature,
        created_by=user,
    )
    version.full_clean()
    version.save()
    return version, True


@transaction.atomic
def scene_run_register(
    *, run: TrainingRun, user, scene: Scene | None = None, new_scene: str = ""
) -> tuple[Scene, ModelVersion, bool]:
    """Register ``run`` as the next version of ``scene``, or of a scene named ``new_scene`` created now (``user``
    becomes its owner). One transaction: a run that cannot be registered leaves no empty new scene behind.
    Returns the scene, the version and whether it was created now. Raises ValidationError naming ``run``,
    ``name`` (the new scene's) or ``scene``."""
    if (scene is None) == (not new_scene):
        raise ValidationError({"scene": ["Choose an existing scene or name a new one, not both."]})
    if scene is None:
        scene = scene_create(name=new_scene, user=user)
    version, created = model_version_register_or_get(run=run, scene=scene, user=user)
    return scene, version, created


def model_version_register(*, run: TrainingRun, scene: Scene, user) -> ModelVersion:
    """Register ``run`` as the next version of ``scene`` (idempotent per run: registering it again returns
    the existing version). See ``model_version_register_or_get``."""
    return model_version_register_or_get(run=run, scene=scene, user=user)[0]
