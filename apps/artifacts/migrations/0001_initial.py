# The Artifact and ArtifactChunk models move here from the deploy app. Their tables already exist (created by
# deploy.0001_initial) and keep their rows: this migration only tells Django's state where the models now
# live; 0002 then renames the tables.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Artifact",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("sha256", models.CharField(max_length=64, unique=True)),
                        ("size", models.BigIntegerField()),
                        ("format", models.CharField(default="onnx", max_length=16)),
                        ("chunk_size", models.PositiveIntegerField()),
                        ("chunk_count", models.PositiveIntegerField()),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={"db_table": "deploy_artifact"},
                ),
                migrations.CreateModel(
                    name="ArtifactChunk",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("index", models.PositiveIntegerField()),
                        ("sha256", models.CharField(max_length=64)),
                        ("data", models.BinaryField()),
                        (
                            "artifact",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="chunks",
                                to="artifacts.artifact",
                            ),
                        ),
                    ],
                    options={
                        "ordering": ["artifact", "index"],
                        "db_table": "deploy_artifactchunk",
                        "constraints": [
                            models.UniqueConstraint(fields=("artifact", "index"), name="artifact_chunk_unique")
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
