# The reaper queues a run again at most once: it counts how often it did.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0004_datasource_kind'),
    ]

    operations = [
        migrations.AddField(
            model_name='trainingrun',
            name='requeues',
            field=models.PositiveSmallIntegerField(default=0, help_text='Times the reaper queued the run again after its job was lost or waited too long.'),
        ),
    ]
