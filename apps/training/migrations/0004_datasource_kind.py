# A data source has a kind (duckdb, mysql, …): "engine" means only the training engine (local, pai).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0003_artifact_in_artifacts_app'),
    ]

    operations = [
        migrations.RenameField(
            model_name='datasource',
            old_name='engine',
            new_name='kind',
        ),
    ]
