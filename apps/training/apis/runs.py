"""Training runs: create, list, read (with the log), cancel, relaunch."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlabsite.api import BodylessAction

from ..models import TrainingRun, TrainingRunEvent
from ..selectors import training_run_events, training_run_get, training_run_list
from ..services import training_run_cancel, training_run_create, training_run_retry
from .preview import RunInputSerializer, resolve_run_input


class RunEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrainingRunEvent
        fields = ["id", "created_at", "level", "stage", "message"]


class RunSerializer(serializers.ModelSerializer):
    template = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    datasource = serializers.SlugRelatedField(slug_field="name", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    model_version = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id", "name", "note", "template", "engine", "datasource", "owner", "params", "status", "stage", "progress",
            "metrics", "sql", "error", "external_job_id", "model_version", "retry_of", "cancel_requested",
            "created_at", "started_at", "finished_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_model_version(self, run) -> dict | None:
        """The first version the run became (in any scene), from the prefetched rows when the list has them."""
        versions = sorted(run.model_versions.all(), key=lambda version: (version.created_at, version.pk))
        return {"scene": versions[0].scene.name, "version": versions[0].version} if versions else None


class RunDetailSerializer(RunSerializer):
    payload = serializers.JSONField(read_only=True)
    report = serializers.JSONField(read_only=True)
    events = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "payload", "report", "events"]
        read_only_fields = fields

    def get_events(self, run) -> list[dict]:
        return serializers.ListSerializer(training_run_events(run=run, limit=500), child=RunEventSerializer()).data


class RunListCreateApi(generics.ListAPIView):
    required_permissions = {"GET": ["training.view_trainingrun"], "POST": ["training.add_trainingrun"]}
    serializer_class = RunSerializer

    def get_queryset(self):
        # The versions a run became are the deploy app's rows: reached by the reverse relation's name, never
        # by importing the app above this one.
        qs = training_run_list(user=self.request.user).prefetch_related("model_versions__scene")
        for field in ("status", "engine"):
            if value := self.request.query_params.get(field):
                qs = qs.filter(**{field: value})
        if slug := self.request.query_params.get("template"):
            qs = qs.filter(template__slug=slug)
        return qs

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=TrainingRun.Status.values),
            OpenApiParameter("engine", str, enum=TrainingRun.Engine.values),
            OpenApiParameter("template", str),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=RunInputSerializer,
        responses={201: RunDetailSerializer},
        examples=[
            OpenApiExample(
                "Logistic regression with 200 iterations",
                value={
                    "template": "binary-lr",
                    "datasource": "demo",
                    "engine": "local",
                    "params": {"train": {"maxIter": 200}},
                },
            )
        ],
        summary="Launch a training run",
    )
    def post(self, request):
        template, datasource, params, engine = resolve_run_input(request)
        run = training_run_create(
            template=template, params=params, engine=engine, datasource=datasource, user=request.user
        )
        return Response(RunDetailSerializer(run).data, status=status.HTTP_201_CREATED)


class _RunLookup(APIView):
    """Finds the run whose id is in the URL, among those the requesting user may see, or 404s.

    An APIView so that the request and the URL kwargs it reads are typed; the views mix it in first.
    """

    def get_run(self) -> TrainingRun:
        try:
            return training_run_get(user=self.request.user, run_id=self.kwargs["pk"])
        except TrainingRun.DoesNotExist:
            raise Http404("No such run.") from None


class RunDetailApi(_RunLookup, generics.RetrieveAPIView):
    required_permissions = {"GET": ["training.view_trainingrun"]}
    serializer_class = RunDetailSerializer

    def get_object(self):
        return self.get_run()


class RunCancelApi(_RunLookup, BodylessAction):
    required_permissions = {"POST": ["training.view_trainingrun", "training.add_trainingrun"]}

    @extend_schema(request=None, responses={200: RunDetailSerializer}, summary="Cancel a queued or running run")
    def post(self, request, pk: int):
        run = training_run_cancel(run=self.get_run(), user=request.user)
        return Response(RunDetailSerializer(run).data)


class RunRetryApi(_RunLookup, BodylessAction):
    required_permissions = {"POST": ["training.view_trainingrun", "training.add_trainingrun"]}

    @extend_schema(request=None, responses={201: RunDetailSerializer}, summary="Relaunch with the same parameters")
    def post(self, request, pk: int):
        run = training_run_retry(run=self.get_run(), user=request.user)
        return Response(RunDetailSerializer(run).data, status=status.HTTP_201_CREATED)
