from django.apps import AppConfig
from django.db.models.signals import post_save


class DeployConfig(AppConfig):
    name = "apps.deploy"
    label = "deploy"
    verbose_name = "Deployment"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Models and the receiver can be imported only once the app registry is ready.
        from .models import Deployment
        from .receivers import deployment_saved

        post_save.connect(deployment_saved, sender=Deployment, dispatch_uid="deploy.deployment_publish")
