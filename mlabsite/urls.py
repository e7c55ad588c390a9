import django_rq.urls
from django.contrib import admin
from django.contrib.auth.decorators import user_passes_test
from django.urls import URLPattern, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from mlabsite.health import healthz

# Deploy's first: the config every client polls is its first route, so resolving it tries nothing else (each
# pattern tried and missed costs a regex match; under WSGI that was a tenth of the poll's time).
api_v1 = [
    path("", include("apps.deploy.urls")),
    path("", include("apps.templates.urls")),
    path("", include("apps.training.urls")),
]


def superusers_only(patterns: list) -> list[URLPattern]:
    """The RQ dashboard empties queues and deletes or requeues anyone's jobs: superusers only (django-rq lets
    every staff user in). Others are sent to the admin login."""
    only = user_passes_test(lambda user: user.is_active and user.is_superuser, login_url="admin:login")
    return [URLPattern(p.pattern, only(p.callback), p.default_args, p.name) for p in patterns]


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("django-rq/", include((superusers_only(django_rq.urls.urlpatterns), "django_rq"))),
]

admin.site.site_header = "Mlab"
admin.site.site_title = "Mlab"
admin.site.index_title = "Machine learning for everyone"
