# TrainingRun.artifact now points at artifacts.Artifact: the same table (see artifacts.0001), so only
# Django's state changes here.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0002_run_report_and_transfer_fence"),
        ("artifacts", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="trainingrun",
                    name="artifact",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="runs",
                        to="artifacts.artifact",
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
