# The roles every install has (mlabsite/roles.py): the "Business developers" group and its permissions.

from django.db import migrations

from mlabsite.roles import roles_sync


def roles_create(apps, schema_editor):
    roles_sync(apps, using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("algo_templates", "0001_initial"),
        ("training", "0003_artifact_in_artifacts_app"),
        ("deploy", "0004_artifacts_moved"),
    ]

    operations = [migrations.RunPython(roles_create, migrations.RunPython.noop)]
