"""Scenes, model versions, deployments, rollback and predict: the API for people and programs (user tokens).

Business developers see and change only the scenes they own: any other scene is a 404.
"""

from __future__ import annotations

from dataclasses import asdict

from django.contrib.auth import get_user_model
from django.http import Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.training.selectors import training_run_list

from .. import selectors, services
from ..models import Deployment, ModelVersion, Scene
from ..scoring import FeatureError


class SceneSerializer(serializers.ModelSerializer):
    owners = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    revision = serializers.SerializerMethodField(help_text="The published revision (0: nothing published yet).")
    versions = serializers.IntegerField(source="version_count", read_only=True)

    class Meta:
        model = Scene
        fields = [
            "name",
            "description",
            "owners",
            "revision",
            "last_revision",
            "versions",
            "attribution_window",
            "guardrail_metric",
            "guardrail_alpha",
            "guardrail_min_units",
            "created_at",
        ]

    def get_revision(self, scene) -> int:
        config = getattr(scene, "config", None)
        return config.revision if config else 0


class ModelVersionSerializer(serializers.ModelSerializer):
    scene = serializers.SlugRelatedField(slug_field="name", read_only=True)
    run = serializers.PrimaryKeyRelatedField(read_only=True)
    template = serializers.SlugRelatedField(source="run.template", slug_field="slug", read_only=True)
    # Null when made without a user, or once that account is deleted (SET_NULL).
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    artifact_url = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "scene",
            "version",
            "sha256",
            "size",
            "format",
            "metrics",
            "run",
            "template",
            "signature",
            "created_by",
            "created_at",
            "artifact_url",
        ]

    def get_artifact_url(self, version) -> str:
        return reverse("api:scene-version-artifact", kwargs={"name": version.scene.name, "version": version.version})


class DeploymentSerializer(serializers.ModelSerializer):
    scene = serializers.SlugRelatedField(slug_field="name", read_only=True)
    author = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)  # as created_by
    published = serializers.BooleanField(read_only=True, default=False)

    class Meta:
        model = Deployment
        fields = [
            "scene",
            "revision",
            "splits",
            "overrides",
            "comment",
            "author",
            "rollback_of",
            "control_version",
            "control",
            "published",
            "created_at",
        ]

    control = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="The control of the results: control_version, else the largest weight.",
    )


class _SceneMixin(APIView):
    """Finds the scene named by the URL, among those the requesting user may see, or 404s.

    An APIView so that the request and the URL kwargs it reads are typed; the views mix it in first.
    """

    def get_scene(self) -> Scene:
        try:
            return selectors.scene_get(user=self.request.user, name=self.kwargs["name"])
        except Scene.DoesNotExist:
            raise Http404("No such scene.") from None


class SceneListCreateApi(generics.ListAPIView):
    """Scenes you own. POST creates one; you become an owner."""

    required_permissions = {"GET": ["deploy.view_scene"], "POST": ["deploy.add_scene"]}

    serializer_class = SceneSerializer

    class SceneCreateInput(serializers.Serializer):
        name = serializers.SlugField(max_length=64)  # as Scene.name: the schema states the pattern
        description = serializers.CharField(required=False, allow_blank=True, default="")
        owners = serializers.ListField(child=serializers.CharField(), required=False, default=list)

    def get_queryset(self):
        return selectors.scene_list(user=self.request.user)

    @extend_schema(request=SceneCreateInput, responses={201: SceneSerializer, 400: OpenApiTypes.OBJECT})
    def post(self, request):
        body = self.SceneCreateInput(data=request.data)
        body.is_valid(raise_exception=True)
        names = body.validated_data["owners"]
        owners = list(get_user_model().objects.filter(username__in=names))
        unknown = sorted(set(names) - {owner.username for owner in owners})
        if unknown:
            raise serializers.ValidationError({"owners": [f"No user named {name!r}." for name in unknown]})
        scene = services.scene_create(
            name=body.validated_data["name"],
            description=body.validated_data["description"],
            owners=owners,
            user=request.user,
        )
        scene = selectors.scene_get(user=request.user, name=scene.name)
        return Response(SceneSerializer(scene).data, status=status.HTTP_201_CREATED)


class SceneDetailApi(_SceneMixin, generics.RetrieveAPIView):
    """A scene you own. PATCH changes its description and its A/B results settings: ``attribution_window``
    (seconds), ``guardrail_metric`` (empty: no guardrail), ``guardrail_alpha``, ``guardrail_min_units``."""

    required_permissions = {"GET": ["deploy.view_scene"], "PATCH": ["deploy.view_scene", "deploy.change_scene"]}
    serializer_class = SceneSerializer

    class SceneUpdateInput(serializers.Serializer):
        description = serializers.CharField(required=False, allow_blank=True)
        attribution_window = serializers.IntegerField(required=False)
        guardrail_metric = serializers.CharField(required=False, allow_blank=True, max_length=64)
        guardrail_alpha = serializers.FloatField(required=False)
        guardrail_min_units = serializers.IntegerField(required=False)

    def get_object(self):
        return self.get_scene()

    @extend_schema(request=SceneUpdateInput, responses={200: SceneSerializer, 400: OpenApiTypes.OBJECT})
    def patch(self, request, name: str):
        scene = self.get_scene()
        body = self.SceneUpdateInput(data=request.data)
        body.is_valid(raise_exception=True)
        services.scene_update(scene=scene, **body.validated_data)
        return Response(SceneSerializer(selectors.scene_get(user=request.user, name=scene.name)).data)


class VersionListCreateApi(_SceneMixin, generics.ListAPIView):
    """The scene's versions. POST ``{"run": id}`` registers a succeeded run as the next version (201), or
    returns the version it already is (200)."""

    required_permissions = {
        "GET": ["deploy.view_scene", "deploy.view_modelversion"],
        "POST": ["deploy.view_scene", "deploy.add_modelversion"],
    }

    serializer_class = ModelVersionSerializer

    class VersionRegisterInput(serializers.Serializer):
        run = serializers.IntegerField()

    def get_queryset(self):
        return selectors.model_version_list(scene=self.get_scene())

    @extend_schema(
        request=VersionRegisterInput,
        responses={201: ModelVersionSerializer, 200: ModelVersionSerializer, 400: OpenApiTypes.OBJECT},
    )
    def post(self, request, name: str):
        scene = self.get_scene()
        body = self.VersionRegisterInput(data=request.data)
        body.is_valid(raise_exception=True)
        run = training_run_list(user=request.user).filter(pk=body.validated_data["run"]).first()
        if run is None:
            raise serializers.ValidationError({"run": [f"You have no run {body.validated_data['run']}."]})
        version, created = services.model_version_register_or_get(run=run, scene=scene, user=request.user)
        version = selectors.model_version_list(scene=scene).get(pk=version.pk)
        return Response(
            ModelVersionSerializer(version).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class VersionDetailApi(_SceneMixin, generics.RetrieveAPIView):
    required_permissions = {"GET": ["deploy.view_scene", "deploy.view_modelversion"]}
    serializer_class = ModelVersionSerializer

    def get_object(self):
        version = selectors.model_version_list(scene=self.get_scene()).filter(version=self.kwargs["version"]).first()
        if version is None:
            raise Http404("No such version.")
        return version


class DeploymentListCreateApi(_SceneMixin, generics.ListAPIView):
    """The scene's deployments, newest first. POST creates the next revision and publishes it."""

    required_permissions = {
        "GET": ["deploy.view_scene", "deploy.view_deployment"],
        "POST": ["deploy.view_scene", "deploy.add_deployment"],
    }

    serializer_class = DeploymentSerializer

    class DeploymentCreateInput(serializers.Serializer):
        splits = serializers.JSONField(help_text='[{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]')
        overrides = serializers.JSONField(required=False, default=dict, help_text='{"unit id": version}')
        comment = serializers.CharField(required=False, allow_blank=True, default="")
        control_version = serializers.IntegerField(
            required=False, allow_null=True, default=None, help_text="The results' control (default: largest weight)."
        )

    def get_queryset(self):
        return selectors.deployment_list(scene=self.get_scene())

    @extend_schema(
        request=DeploymentCreateInput,
        responses={201: DeploymentSerializer, 400: OpenApiTypes.OBJECT},
        examples=[
            OpenApiExample(
                "90/10 with one unit pinned",
                value={"splits": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}], "overrides": {"u-7": 2}},
            )
        ],
    )
    def post(self, request, name: str):
        scene = self.get_scene()
        body = self.DeploymentCreateInput(data=request.data)
        body.is_valid(raise_exception=True)
        deployment = services.deployment_create(scene=scene, user=request.user, **body.validated_data)
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_201_CREATED)


class RollbackApi(_SceneMixin, APIView):
    """A new revision with the splits and overrides of an earlier one."""

    required_permissions = {"POST": ["deploy.view_scene", "deploy.add_deployment"]}

    class RollbackInput(serializers.Serializer):
        revision = serializers.IntegerField(min_value=1)
        comment = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(request=RollbackInput, responses={201: DeploymentSerializer, 404: OpenApiTypes.OBJECT})
    def post(self, request, name: str):
        scene = self.get_scene()
        body = self.RollbackInput(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            deployment = services.deployment_rollback(scene=scene, user=request.user, **body.validated_data)
        except Deployment.DoesNotExist as exc:
            raise Http404(str(exc)) from None
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_201_CREATED)


class PredictApi(_SceneMixin, APIView):
    """Score one row with the version the unit is routed to under the published config (same routing as
    the client SDK). Without ``unit_id`` a random bucket is drawn."""

    required_permissions = {"POST": ["deploy.view_scene", "deploy.view_modelversion"]}

    class PredictInput(serializers.Serializer):
        unit_id = serializers.CharField(required=False, max_length=200)
        features = serializers.DictField(child=serializers.JSONField(allow_null=True))

    @extend_schema(
        request=PredictInput,
        responses={
            200: inline_serializer(
                "Prediction",
                {
                    "version": serializers.IntegerField(),
                    "score": serializers.FloatField(),
                    "label": serializers.IntegerField(allow_null=True),
                    "revision": serializers.IntegerField(),
                },
            ),
            400: OpenApiTypes.OBJECT,
        },
    )
    def post(self, request, name: str):
        scene = self.get_scene()
        body = self.PredictInput(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            prediction = services.scene_predict(
                scene=scene, features=body.validated_data["features"], unit_id=body.validated_data.get("unit_id")
            )
        except services.VersionCorrupt as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        except services.PredictionRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except FeatureError as exc:
            return Response({"features": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response(asdict(prediction))
