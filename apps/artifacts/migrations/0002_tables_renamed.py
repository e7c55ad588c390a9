# Renames the tables the artifact models took over from the deploy app (rows, keys and the foreign keys that
# point at them are kept: RENAME TABLE on MySQL/MariaDB, ALTER TABLE … RENAME on SQLite), and moves their
# content types, so that permissions granted on them stay granted.

from django.db import migrations

MODELS = ("artifact", "artifactchunk")


def content_types_follow(apps, schema_editor, old: str, new: str) -> None:
    content_type = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    for model in MODELS:
        if not content_type.objects.using(db).filter(app_label=new, model=model).exists():
            content_type.objects.using(db).filter(app_label=old, model=model).update(app_label=new)


def forwards(apps, schema_editor):
    content_types_follow(apps, schema_editor, "deploy", "artifacts")


def backwards(apps, schema_editor):
    content_types_follow(apps, schema_editor, "artifacts", "deploy")


class Migration(migrations.Migration):
    dependencies = [
        ("artifacts", "0001_initial"),
        ("deploy", "0004_artifacts_moved"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelTable(name="artifact", table=None),
        migrations.AlterModelTable(name="artifactchunk", table=None),
        migrations.RunPython(forwards, backwards),
    ]
