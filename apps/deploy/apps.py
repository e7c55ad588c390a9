from django.apps import AppConfig


class DeployConfig(AppConfig):
    name = "apps.deploy"
    label = "deploy"
    verbose_name = "Deployment"
    default_auto_field = "django.db.models.BigAutoField"
