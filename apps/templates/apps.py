from django.apps import AppConfig


class AlgoTemplatesConfig(AppConfig):
    # The folder is apps/templates; the label keeps it apart from Django's template directories.
    name = "apps.templates"
    label = "algo_templates"
    verbose_name = "Algorithm templates"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the built-in node types, once the app registry is ready.
        from . import nodes  # noqa: F401
