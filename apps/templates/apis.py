"""API of algorithm templates: metadata, JSON Schema, and validation of run parameters."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors
from .models import AlgorithmTemplate, TemplateNode
from .payload import build_payload, mask_secrets
from .schema import template_json_schema
from .validation import template_specs, validate_run_params


class TemplateNodeSerializer(serializers.ModelSerializer):
    type = serializers.CharField(source="node_type")
    kind = serializers.SerializerMethodField()
    # DRF's metaclass moves declared fields off the class, so nothing shadows Field.label at run time; the stubs
    # cannot know that.
    label = serializers.SerializerMethodField()  # type: ignore[assignment]
    params = serializers.SerializerMethodField()

    class Meta:
        model = TemplateNode
        fields = ["key", "type", "kind", "label", "position", "params"]

    def get_kind(self, node) -> str:
        return node.type.kind.value

    def get_label(self, node) -> str:
        return node.type.label

    def get_params(self, node) -> list[dict]:
        params = []
        for param in node.type.params:
            described = param.describe()
            value = node.effective_value(param.name)
            described["default"] = None if param.secret else value
            described["locked"] = param.name in node.locked
            params.append(described)
        return params


class TemplateSerializer(serializers.ModelSerializer):
    # Built-in templates have no owner.
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    nodes = TemplateNodeSerializer(many=True, read_only=True)

    class Meta:
        model = AlgorithmTemplate
        fields = [
            "slug",
            "name",
            "description",
            "task_type",
            "owner",
            "published",
            "builtin",
            "nodes",
            "created_at",
            "updated_at",
        ]


class TemplateListApi(generics.ListAPIView):
    required_permissions = {"GET": ["algo_templates.view_algorithmtemplate"]}
    serializer_class = TemplateSerializer

    def get_queryset(self):
        return selectors.template_list(user=self.request.user)


class _TemplateLookupMixin(APIView):
    """Finds the template named by the URL, among those the requesting user may see, or 404s.

    An APIView so that the request and the URL kwargs it reads are typed; the views mix it in first.
    """

    def get_template(self) -> AlgorithmTemplate:
        try:
            return selectors.template_get(user=self.request.user, slug=self.kwargs["slug"])
        except AlgorithmTemplate.DoesNotExist:
            raise Http404("No such template.") from None


class TemplateDetailApi(_TemplateLookupMixin, generics.RetrieveAPIView):
    required_permissions = {"GET": ["algo_templates.view_algorithmtemplate"]}
    serializer_class = TemplateSerializer

    def get_object(self):
        return self.get_template()


class TemplateSchemaApi(_TemplateLookupMixin, APIView):
    required_permissions = {"GET": ["algo_templates.view_algorithmtemplate"]}

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="JSON Schema (2020-12) of a run's parameters")
    def get(self, request, slug: str):
        template = self.get_template()
        schema = template_json_schema(
            slug=template.slug,
            name=template.name,
            description=template.description,
            specs=template_specs(template),
        )
        return Response(schema)


class TemplateValidateApi(_TemplateLookupMixin, APIView):
    """Validate run parameters against a template without launching anything."""

    required_permissions = {"POST": ["algo_templates.view_algorithmtemplate"]}

    class InputSerializer(serializers.Serializer):
        params = serializers.DictField(child=serializers.JSONField(), required=False, default=dict)

    @extend_schema(
        request=InputSerializer,
        responses={
            200: inline_serializer(
                "ValidatedParams", {"params": serializers.DictField(), "payload": serializers.DictField()}
            ),
            400: OpenApiTypes.OBJECT,
        },
        examples=[OpenApiExample("Change one parameter", value={"params": {"train": {"maxIter": 200}}})],
        summary="Validate run parameters",
    )
    def post(self, request, slug: str):
        template = self.get_template()
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        specs = template_specs(template)
        cleaned = validate_run_params(template, body.validated_data["params"], specs=specs)
        payload = build_payload(template_slug=template.slug, task=template.task_type, specs=specs, cleaned=cleaned)
        return Response({"params": mask_secrets(specs, cleaned), "payload": payload})
