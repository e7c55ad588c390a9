from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from mlabsite.health import healthz

api_v1 = [
    path("", include("apps.templates.urls")),
    path("", include("apps.training.urls")),
    path("", include("apps.deploy.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("django-rq/", include("django_rq.urls")),
]

handler400 = "mlabsite.api.bad_request"
handler403 = "mlabsite.api.permission_denied"
handler404 = "mlabsite.api.page_not_found"
handler500 = "mlabsite.api.server_error"

admin.site.site_header = "Mlab"
admin.site.site_title = "Mlab"
admin.site.index_title = "Machine learning for everyone"
