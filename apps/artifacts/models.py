"""Model files stored in the database as ordered, checksummed chunks."""

from __future__ import annotations

from django.db import models


class Artifact(models.Model):
    """A model file, content-addressed by sha256, stored in the database as ordered chunks.

    The row and all its chunks are written in one transaction, so a half-written artifact is never visible.
    """

    sha256 = models.CharField(max_length=64, unique=True)
    size = models.BigIntegerField()
    format = models.CharField(max_length=16, default="onnx")
    chunk_size = models.PositiveIntegerField()
    chunk_count = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.format} {self.sha256[:12]} ({self.size} bytes)"


class ArtifactChunk(models.Model):
    artifact = models.ForeignKey(Artifact, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    data = models.BinaryField()

    class Meta:
        ordering = ["artifact", "index"]
        constraints = [models.UniqueConstraint(fields=["artifact", "index"], name="artifact_chunk_unique")]

    def __str__(self) -> str:
        return f"chunk {self.index} of {self.artifact_id}"
