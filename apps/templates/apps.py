from django.apps import AppConfig


class AlgoTemplatesConfig(AppConfig):
    # The folder is apps/templates; the label keeps it apart from Django's template directories.
    name = "apps.templates"
    label = "algo_templates"
    verbose_name = "Algorithm templates"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the built-in node types, once the app registry is ready.
        from mlabsite.error_reports import register_secret_finder

        from . import nodes  # noqa: F401
        from .error_reports import request_secret_values

        # Error reports mask the values of parameters the node metadata declares secret.
        register_secret_finder("apps.templates", request_secret_values)
