from django.apps import AppConfig


class ArtifactsConfig(AppConfig):
    """Model files: checksummed chunks in the database and their Redis cache. The lowest app: every other app
    may use it, and it uses none of them."""

    name = "apps.artifacts"
    label = "artifacts"
    verbose_name = "Artifacts"
    default_auto_field = "django.db.models.BigAutoField"
