import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlabsite.settings.base")
django_application = get_asgi_application()

from apps.deploy.longpoll import LongPollRouter  # noqa: E402 (Django is set up by now)

# Long polls of the config are answered without Django's per-request thread (see apps/deploy/longpoll.py).
application = LongPollRouter(django_application)
