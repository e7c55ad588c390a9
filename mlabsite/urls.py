import django_rq.urls
from django.contrib import admin
from django.contrib.auth.decorators import user_passes_test
from django.contrib.auth.views import redirect_to_login
from django.urls import URLPattern, include, path
from django.views.generic import RedirectView
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


_swagger = SpectacularSwaggerView.as_view(url_name="schema")


def api_docs(request, *args, **kwargs):
    """The Swagger UI for people: someone not logged in is sent to the login page (and back), not given a bare
    403. Programs read the schema itself (/api/schema/) with their token."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), "admin:login")
    return _swagger(request, *args, **kwargs)


urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False), name="home"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", api_docs, name="api-docs"),
    path("django-rq/", include((superusers_only(django_rq.urls.urlpatterns), "django_rq"))),
]

handler400 = "mlabsite.api.bad_request"
handler403 = "mlabsite.api.permission_denied"
handler404 = "mlabsite.api.page_not_found"
handler500 = "mlabsite.api.server_error"

admin.site.site_header = "Mlab"
admin.site.site_title = "Mlab"
admin.site.index_title = "Machine learning for everyone"
# The header's "View site" link, shown as "API docs" (mlabsite/templates/admin/base_site.html): "/" is the admin.
admin.site.site_url = "/api/docs/"
