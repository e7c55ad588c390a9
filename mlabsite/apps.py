from django.apps import AppConfig


class MlabsiteConfig(AppConfig):
    """The project's shared pieces that need an app of their own: the roles (groups and their permissions),
    created by this app's data migrations."""

    name = "mlabsite"
    label = "mlabsite"
    verbose_name = "Mlab"
