# Django REST framework's tokens (rest_framework.authtoken, plaintext keys) become ApiTokens (sha256 digests):
# every existing token keeps working, then its plaintext row is deleted.
#
# The table is read with SQL, not through the authtoken app's model: that app is no longer installed (nothing
# else needs it), so that no plaintext token can be made again. On a fresh install the table does not exist and
# there is nothing to do. The emptied table is left in place, with authtoken's migration records, so that
# re-installing the app later finds the state its migrations describe.

import hashlib
from datetime import UTC, datetime

from django.db import migrations
from django.utils.dateparse import parse_datetime

LEGACY_TABLE = "authtoken_token"


def _aware(value) -> datetime | None:
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # Django stores UTC
    return value


def drf_tokens_to_digests(apps, schema_editor):
    connection = schema_editor.connection
    if LEGACY_TABLE not in connection.introspection.table_names():
        return
    api_token = apps.get_model("mlabsite", "ApiToken")
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {quote('key')}, {quote('user_id')}, {quote('created')} FROM {quote(LEGACY_TABLE)}")
        rows = cursor.fetchall()
    for key, user_id, created in rows:
        digest = hashlib.sha256(key.encode()).hexdigest()
        token, _ = api_token.objects.using(connection.alias).get_or_create(
            key=digest, defaults={"user_id": user_id, "name": "migrated", "hint": key[:4]}
        )
        if created is not None:  # keep when it was made (created_at is auto_now_add on insert)
            api_token.objects.using(connection.alias).filter(pk=token.pk).update(created_at=_aware(created))
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {quote(LEGACY_TABLE)}")


class Migration(migrations.Migration):
    dependencies = [("mlabsite", "0002_apitoken")]

    # Irreversible in substance: the plaintext keys are gone. Unapplying keeps the ApiTokens as they are.
    operations = [migrations.RunPython(drf_tokens_to_digests, migrations.RunPython.noop)]
