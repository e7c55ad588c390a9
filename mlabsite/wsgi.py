import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlabsite.settings.base")
django_application = get_wsgi_application()

from apps.deploy.longpoll import PlainPollRouter  # noqa: E402 (Django is set up by now)

# Plain polls of the config are answered without Django's handler and middleware (see apps/deploy/longpoll.py).
application = PlainPollRouter(django_application)
