"""Scenes, model versions, deployments and the config table clients poll."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Scene(models.Model):
    """A business scenario clients ask for by name, e.g. ``seller-union-ctr``."""

    name = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    owners = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="scenes")
    salt = models.CharField(max_length=32, help_text="Mixed into unit bucketing; fixed at creation.")
    last_version = models.PositiveIntegerField(default=0, help_text="Versions are numbered from this counter.")
    last_revision = models.PositiveIntegerField(default=0, help_text="Deployments are numbered from this counter.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    scene = models.ForeignKey(Scene, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    run = models.ForeignKey("training.TrainingRun", on_delete=models.PROTECT, related_name="model_versions")
    artifact = models.ForeignKey("artifacts.Artifact", on_delete=models.PROTECT, related_name="versions")
    format = models.CharField(max_length=16, default="onnx")
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    metrics = models.JSONField(default=dict, blank=True)
    signature = models.JSONField(default=list, blank=True, help_text="[{name, type, categories?}]")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["scene", "version"]
        constraints = [
            models.UniqueConstraint(fields=["scene", "version"], name="model_version_number_unique"),
            models.UniqueConstraint(fields=["scene", "run"], name="model_version_run_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.scene_id} v{self.version}"


class Deployment(models.Model):
    """An immutable change of a scene's traffic: splits (version → integer weight summing to 100) and
    overrides (unit id → version). Rollback creates a new deployment copying an earlier revision."""

    scene = models.ForeignKey(Scene, on_delete=models.PROTECT, related_name="deployments")
    revision = models.PositiveIntegerField()
    splits = models.JSONField(help_text='[{"version": 1, "weight": 90}, …]')
    overrides = models.JSONField(default=dict, blank=True, help_text='{"unit id": version}')
    comment = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rollback_of = models.PositiveIntegerField(null=True, blank=True, help_text="The revision this one copies.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["scene", "-revision"]
        constraints = [models.UniqueConstraint(fields=["scene", "revision"], name="deployment_revision_unique")]

    def __str__(self) -> str:
        return f"{self.scene_id} r{self.revision}"


class ConfigEntry(models.Model):
    """The polled config table: one row per scene, the last published revision. Written only by a
    conditional update that refuses a stale fencing token, so ``revision`` and ``fence`` only grow."""

    scene = models.OneToOneField(Scene, on_delete=models.CASCADE, related_name="config")
    revision = models.PositiveIntegerField(default=0)
    content = models.JSONField(default=dict, blank=True, help_text="Empty until the first publication.")
    etag = models.CharField(max_length=80, blank=True)
    fence = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.scene_id} @ r{self.revision}"


class ConfigRevision(models.Model):
    """Every published revision of every scene's config, kept for history, diff and rollback."""

    scene = models.ForeignKey(Scene, on_delete=models.CASCADE, related_name="config_history")
    revision = models.PositiveIntegerField()
    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="+")
    content = models.JSONField()
    etag = models.CharField(max_length=80)
    fence = models.BigIntegerField()
    published_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["scene", "-revision"]
        constraints = [models.UniqueConstraint(fields=["scene", "revision"], name="config_revision_unique")]

    def __str__(self) -> str:
        return f"{self.scene_id} r{self.revision} (published)"


class ClientToken(models.Model):
    """A read-only token for client processes, scoped to scenes: config and artifacts of those scenes only.

    Only the sha256 of the token is stored; the token itself is shown once, when it is created."""

    key = models.CharField(max_length=64, unique=True, help_text="sha256 of the token (the token is never stored).")
    hint = models.CharField(max_length=16, blank=True, help_text="The token's first characters, to recognise it.")
    name = models.CharField(max_length=100)
    scenes = models.ManyToManyField(Scene, related_name="client_tokens")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name
