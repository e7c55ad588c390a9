# Business developers issue, see and revoke their own API tokens (mlabsite/roles.py).

from django.db import migrations

from mlabsite.roles import roles_sync


def roles_update(apps, schema_editor):
    roles_sync(apps, using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [("mlabsite", "0003_drf_tokens_to_digests")]

    operations = [migrations.RunPython(roles_update, migrations.RunPython.noop)]
