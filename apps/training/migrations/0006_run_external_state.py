# What PAI says of a run's job: its OSS input and output, status, reason, progress and console URL.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0005_run_requeues'),
    ]

    operations = [
        migrations.AddField(
            model_name='trainingrun',
            name='external_state',
            field=models.JSONField(blank=True, default=dict, help_text='What PAI says of the job: its OSS input and output, status, reason, progress, console URL.'),
        ),
    ]
