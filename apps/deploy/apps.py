from django.apps import AppConfig
from django.db.models.signals import post_save


class DeployConfig(AppConfig):
    name = "apps.deploy"
    label = "deploy"
    verbose_name = "Deployment"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Models and the receiver can be imported only once the app registry is ready.
        from apps.training.live_models import live_models_provide

        from .models import Deployment
        from .receivers import deployment_saved
        from .selectors import live_versions_of_template

        post_save.connect(deployment_saved, sender=Deployment, dispatch_uid="deploy.deployment_publish")
        # A run's page compares it with the versions of its template live in the user's scenes.
        live_models_provide(live_versions_of_template)
