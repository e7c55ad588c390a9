from django.urls import path

from . import apis

urlpatterns = [
    path("templates/", apis.TemplateListApi.as_view(), name="template-list"),
    path("templates/<slug:slug>/", apis.TemplateDetailApi.as_view(), name="template-detail"),
    path("templates/<slug:slug>/schema/", apis.TemplateSchemaApi.as_view(), name="template-schema"),
    path("templates/<slug:slug>/validate/", apis.TemplateValidateApi.as_view(), name="template-validate"),
]
