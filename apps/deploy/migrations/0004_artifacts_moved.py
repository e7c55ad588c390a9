# The artifact models moved to the artifacts app (their tables and rows stay; artifacts.0002 renames the
# tables). ModelVersion.artifact points at the moved model, and deploy's state forgets both models.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("deploy", "0003_tokens_hashed_authors_optional"),
        ("artifacts", "0001_initial"),
        ("training", "0003_artifact_in_artifacts_app"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="modelversion",
                    name="artifact",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="versions", to="artifacts.artifact"
                    ),
                ),
                migrations.DeleteModel(name="ArtifactChunk"),
                migrations.DeleteModel(name="Artifact"),
            ],
            database_operations=[],
        ),
    ]
