from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo: its warehouse, `mlab_demo`, and the loop a client runs against a serving Mlab. The top app:
    it uses every other app, and none uses it."""

    name = "apps.demo"
    label = "demo"
    verbose_name = "Demo"
