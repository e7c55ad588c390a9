"""Run pages: the list (status, template, engine, owner, AUC, duration) and a run's page (live progress, SQL,
payload, log, metrics and charts), with Relaunch and Cancel buttons that call the same services as the API."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from apps.templates.validation import RunParamsInvalid
from mlabsite.formfields import JSON_FORMFIELD_OVERRIDES

from .. import charts
from ..models import TrainingRun
from ..selectors import training_run_events, training_run_list
from ..services import training_run_cancel, training_run_retry
from .launch import launch_view


def _duration(run: TrainingRun) -> str:
    if not run.started_at:
        return "—"
    end = run.finished_at or run.updated_at
    seconds = max(0, int((end - run.started_at).total_seconds()))
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _metric(run: TrainingRun, name: str) -> str:
    value = (run.metrics or {}).get(name)
    return f"{value:.3f}" if isinstance(value, int | float) else "—"


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_FORMFIELD_OVERRIDES
    list_display = ["id", "template", "status_badge", "stage", "progress_bar", "engine", "owner", "auc", "r2",
                    "duration", "created_at"]  # fmt: skip
    # Templates and sources of the runs the user sees only: no names of others' private templates.
    list_filter = [
        "status",
        "engine",
        ("template", admin.RelatedOnlyFieldListFilter),
        ("datasource", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["template", "owner"]
    search_fields = ["id", "template__slug", "owner__username", "external_job_id"]
    date_hierarchy = "created_at"
    change_form_template = "admin/training/trainingrun/change_form.html"

    class Media:
        css = {"all": ["mlab/admin.css"]}
        js = ["mlab/run.js"]

    def get_queryset(self, request):
        return training_run_list(user=request.user)

    def has_add_permission(self, request):
        return False  # runs are launched from a template's Launch page, the API or `manage.py train`

    def has_change_permission(self, request, obj=None):
        return False  # a run's record is written by its engine only

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and (obj is None or obj.is_finished)

    @admin.display(description="status", ordering="status")
    def status_badge(self, run: TrainingRun) -> str:
        return format_html('<span class="mlab-status mlab-status-{}">{}</span>', run.status, run.status)

    @admin.display(description="progress")
    def progress_bar(self, run: TrainingRun) -> str:
        return format_html(
            '<progress max="100" value="{}" class="mlab-progress">{}%</progress>', run.progress, run.progress
        )

    @admin.display(description="AUC")
    def auc(self, run: TrainingRun) -> str:
        return _metric(run, "auc")

    @admin.display(description="R²")
    def r2(self, run: TrainingRun) -> str:
        return _metric(run, "r2")

    @admin.display(description="duration")
    def duration(self, run: TrainingRun) -> str:
        return _duration(run)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<int:run_id>/relaunch/", view(require_POST(self.relaunch_view)), name="training_trainingrun_relaunch"
            ),
            path("<int:run_id>/cancel/", view(require_POST(self.cancel_view)), name="training_trainingrun_cancel"),
            path("launch/<int:template_id>/", view(self.launch_view), name="training_trainingrun_launch"),
            *super().get_urls(),
        ]

    def _run_or_404(self, request, run_id: int) -> TrainingRun:
        run = self.get_queryset(request).filter(pk=run_id).first()
        if run is None:
            raise Http404("No such run.")
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        return run

    def _acting_on_run_or_404(self, request, run_id: int) -> TrainingRun:
        """A run to cancel or relaunch: acting on runs needs what launching one does (as in the API)."""
        run = self._run_or_404(request, run_id)
        if not request.user.has_perm("training.add_trainingrun"):
            raise PermissionDenied
        return run

    def relaunch_view(self, request, run_id: int):
        run = self._acting_on_run_or_404(request, run_id)
        try:
            new_run = training_run_retry(run=run, user=request.user)
        except (RunParamsInvalid, ValidationError) as exc:
            errors = exc.errors if isinstance(exc, RunParamsInvalid) else exc.messages
            self.message_user(request, f"This run cannot be relaunched as it was: {errors}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:training_trainingrun_change", args=[run.pk]))
        self.message_user(request, f"Relaunched as run {new_run.pk}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:training_trainingrun_change", args=[new_run.pk]))

    def launch_view(self, request, template_id: int):
        return launch_view(self, request, template_id)

    def cancel_view(self, request, run_id: int):
        run = training_run_cancel(run=self._acting_on_run_or_404(request, run_id), user=request.user)
        text = "Cancelled." if run.status == TrainingRun.Status.CANCELLED else "Cancellation requested."
        self.message_user(request, text if not run.is_finished or run.status == "cancelled" else "Already finished.")
        return HttpResponseRedirect(reverse("admin:training_trainingrun_change", args=[run.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_queryset(request).filter(pk=object_id).first()
        context = dict(extra_context or {})
        if run is not None:
            context.update(self.run_context(run))
        return super().change_view(request, object_id, form_url, extra_context=context)

    def run_context(self, run: TrainingRun) -> dict:
        report = run.report or {}
        metrics = run.metrics or {}
        charts_html = []
        if report.get("roc"):
            charts_html.append(charts.roc_svg(report["roc"], metrics.get("auc")))
        if report.get("feature_importance"):
            charts_html.append(charts.importance_svg(report["feature_importance"]))
        if report.get("residual_histogram"):
            charts_html.append(charts.histogram_svg(report["residual_histogram"]))
        versions = list(run.model_versions.select_related("scene").order_by("created_at"))
        return {
            "run": run,
            "run_events": training_run_events(run=run, limit=1000),
            "run_metrics": [(k, v) for k, v in metrics.items() if isinstance(v, int | float)],
            "run_charts": [c for c in charts_html if c],
            "run_payload_json": json.dumps(run.payload, indent=2),
            "run_params_json": json.dumps(run.params, indent=2),
            "run_duration": _duration(run),
            "run_versions": versions,
            "run_register_url": _register_url(run),
            "run_api_url": reverse("api:run-detail", args=[run.pk]),
        }


def _register_url(run: TrainingRun) -> str | None:
    """The page registering the run as the next version of a scene (the deploy app's, found by its URL name),
    when the run can be registered and that page exists."""
    if run.status != TrainingRun.Status.SUCCEEDED or run.artifact_id is None:
        return None
    try:
        return reverse("admin:deploy_scene_register_run", args=[run.pk])
    except NoReverseMatch:
        return None
