"""Run pages: the list (name, status, template, owner, AUC and R² that sort, duration; search by name, note,
template and owner), a run's page (live status, metrics people can read, the comparison with the versions of
its template live in the user's scenes, charts, SQL, payload, log), the comparison of 2 to 5 runs side by
side, and the doors that call the same services as the API: Cancel, Relaunch, Edit and relaunch, name and note.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import FloatField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from apps.templates.metrics import human_number, key_metric, metric_guide, metric_rows
from apps.templates.validation import RunParamsInvalid
from mlabsite.formfields import JSON_FORMFIELD_OVERRIDES

from .. import charts
from ..humanize import human_duration, human_size
from ..live_models import live_models_for
from ..models import TrainingRun
from ..selectors import training_run_events, training_run_list, training_run_may_describe
from ..services import training_run_cancel, training_run_describe, training_run_retry
from .compare import COMPARE_MAX, COMPARE_MIN, compare_context
from .launch import launch_view

STATUS_BANNERS: dict[str, str] = {
    TrainingRun.Status.QUEUED: "Queued: waiting for a worker to start it. This page follows the run by itself.",
    TrainingRun.Status.RUNNING: "Training. This page follows the run by itself; no need to reload.",
    TrainingRun.Status.SUCCEEDED: "Done: the model is ready. Register it as a version of a scene to serve it.",
    TrainingRun.Status.FAILED: "Failed: nothing was saved. The reason is below.",
    TrainingRun.Status.CANCELLED: "Cancelled: nothing was saved.",
}


def _duration(run: TrainingRun) -> str:
    if not run.started_at:
        return "—"
    end = run.finished_at or run.updated_at
    return human_duration(end - run.started_at)


def run_title(run: TrainingRun) -> str:
    return f"Run {run.pk}" + (f" · {run.name}" if run.name else "") + f" · {run.template.name}"


class RunDescriptionForm(forms.Form):
    name = forms.CharField(required=False, max_length=120, widget=forms.TextInput(attrs={"size": 40}))
    note = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    formfield_overrides = JSON_FORMFIELD_OVERRIDES
    list_display = ["id", "run_name", "template", "status_badge", "progress_bar", "engine", "owner", "auc", "r2",
                    "duration", "created_at"]  # fmt: skip
    list_display_links = ["id", "run_name"]
    # Templates and sources of the runs the user sees only: no names of others' private templates.
    list_filter = [
        "status",
        "engine",
        ("template", admin.RelatedOnlyFieldListFilter),
        ("datasource", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["template", "owner"]
    search_fields = ["id", "name", "note", "template__name", "template__slug", "owner__username", "external_job_id"]
    search_help_text = "Search by run number, name, note, template or owner."
    date_hierarchy = "created_at"
    actions = ["compare_runs"]
    change_form_template = "admin/training/trainingrun/change_form.html"

    class Media:
        css = {"all": ["mlab/admin.css"]}
        js = ["mlab/run.js"]

    def get_queryset(self, request):
        # Metrics live in a JSON column; their values are annotated so that the list sorts by them.
        return training_run_list(user=request.user).annotate(
            auc_value=Cast(KeyTextTransform("auc", "metrics"), FloatField()),
            r2_value=Cast(KeyTextTransform("r2", "metrics"), FloatField()),
        )

    def has_add_permission(self, request):
        return False  # runs are launched from a template's Launch page, the API or `manage.py train`

    def has_change_permission(self, request, obj=None):
        return False  # a run's record is written by its engine only (its name and note by their own form)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and (obj is None or obj.is_finished)

    @admin.display(description="name", ordering="name")
    def run_name(self, run: TrainingRun) -> str:
        return run.name or "—"

    @admin.display(description="status", ordering="status")
    def status_badge(self, run: TrainingRun) -> str:
        return format_html('<span class="mlab-status mlab-status-{}">{}</span>', run.status, run.status)

    @admin.display(description="progress")
    def progress_bar(self, run: TrainingRun) -> str:
        return format_html(
            '<progress max="100" value="{}" class="mlab-progress">{}%</progress>', run.progress, run.progress
        )

    @admin.display(description="AUC", ordering="auc_value")
    def auc(self, run: TrainingRun) -> str:
        return human_number((run.metrics or {}).get("auc"))

    @admin.display(description="R²", ordering="r2_value")
    def r2(self, run: TrainingRun) -> str:
        return human_number((run.metrics or {}).get("r2"))

    @admin.display(description="duration")
    def duration(self, run: TrainingRun) -> str:
        return _duration(run)

    @admin.action(description=f"Compare the selected runs ({COMPARE_MIN} to {COMPARE_MAX})")
    def compare_runs(self, request, queryset):
        ids = sorted(queryset.values_list("pk", flat=True))
        if not COMPARE_MIN <= len(ids) <= COMPARE_MAX:
            self.message_user(
                request, f"Select {COMPARE_MIN} to {COMPARE_MAX} runs to compare ({len(ids)} selected).", messages.ERROR
            )
            return None
        return HttpResponseRedirect(reverse("admin:training_trainingrun_compare") + "?runs=" + ",".join(map(str, ids)))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<int:run_id>/relaunch/", view(require_POST(self.relaunch_view)), name="training_trainingrun_relaunch"
            ),
            path("<int:run_id>/cancel/", view(require_POST(self.cancel_view)), name="training_trainingrun_cancel"),
            path(
                "<int:run_id>/describe/", view(require_POST(self.describe_view)), name="training_trainingrun_describe"
            ),
            path("launch/<int:template_id>/", view(self.launch_view), name="training_trainingrun_launch"),
            path("compare/", view(self.compare_view), name="training_trainingrun_compare"),
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
        except (RunParamsInvalid, ValidationError):
            # The template (or the source) changed since: open the form with the errors next to the fields.
            self.message_user(
                request,
                f"Run {run.pk} cannot be relaunched as it was: its parameters no longer validate. Correct them below.",
                messages.WARNING,
            )
            return HttpResponseRedirect(edit_and_relaunch_url(run))
        self.message_user(request, f"Relaunched as run {new_run.pk}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:training_trainingrun_change", args=[new_run.pk]))

    def launch_view(self, request, template_id: int):
        return launch_view(self, request, template_id)

    def cancel_view(self, request, run_id: int):
        run = training_run_cancel(run=self._acting_on_run_or_404(request, run_id), user=request.user)
        text = "Cancelled." if run.status == TrainingRun.Status.CANCELLED else "Cancellation requested."
        self.message_user(request, text if not run.is_finished or run.status == "cancelled" else "Already finished.")
        return HttpResponseRedirect(reverse("admin:training_trainingrun_change", args=[run.pk]))

    def describe_view(self, request, run_id: int):
        run = self._run_or_404(request, run_id)
        form = RunDescriptionForm(request.POST)
        if form.is_valid():
            try:
                training_run_describe(
                    run=run, user=request.user, name=form.cleaned_data["name"], note=form.cleaned_data["note"]
                )
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
            else:
                self.message_user(request, "Name and note saved.", messages.SUCCESS)
        else:
            self.message_user(
                request, " ".join(str(e) for errors in form.errors.values() for e in errors), messages.ERROR
            )
        return HttpResponseRedirect(reverse("admin:training_trainingrun_change", args=[run.pk]))

    def compare_view(self, request):
        raw = request.GET.get("runs", "")
        ids = list(dict.fromkeys(int(part) for part in raw.split(",") if part.strip().isdigit()))
        runs = {run.pk: run for run in self.get_queryset(request).filter(pk__in=ids)}
        chosen = [runs[pk] for pk in ids if pk in runs]
        if not COMPARE_MIN <= len(chosen) <= COMPARE_MAX:
            self.message_user(
                request, f"Select {COMPARE_MIN} to {COMPARE_MAX} of your runs to compare.", messages.ERROR
            )
            return HttpResponseRedirect(reverse("admin:training_trainingrun_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Compare runs " + ", ".join(str(run.pk) for run in chosen),
            "media": self.media,
            **compare_context(chosen),
        }
        return TemplateResponse(request, "admin/training/trainingrun/compare.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_queryset(request).filter(pk=object_id).first() if str(object_id).isdigit() else None
        context = dict(extra_context or {})
        if run is not None:
            context.update(self.run_context(request, run))
        return super().change_view(request, object_id, form_url, extra_context=context)

    def run_context(self, request, run: TrainingRun) -> dict:
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
        may_describe = training_run_may_describe(run=run, user=request.user)
        return {
            "title": run_title(run),
            "subtitle": None,  # Django's would repeat the run's name under the heading
            "run": run,
            "run_banner": STATUS_BANNERS.get(run.status, ""),
            "run_banners_json": {str(k): v for k, v in STATUS_BANNERS.items()},
            "run_events": training_run_events(run=run, limit=1000),
            "run_metric_rows": metric_rows(metrics),
            "run_live_comparisons": live_comparisons(run, request.user) if run.status == "succeeded" else [],
            "run_charts": [c for c in charts_html if c],
            "run_payload_json": json.dumps(run.payload, indent=2),
            "run_params_json": json.dumps(run.params, indent=2),
            "run_duration": _duration(run),
            "run_model_size": human_size(run.artifact.size) if run.artifact_id and run.artifact else None,
            "run_versions": versions,
            "run_register_url": _register_url(run),
            "run_api_url": reverse("api:run-detail", args=[run.pk]),
            "run_edit_relaunch_url": edit_and_relaunch_url(run),
            "run_description_form": RunDescriptionForm(initial={"name": run.name, "note": run.note})
            if may_describe
            else None,
        }


def edit_and_relaunch_url(run: TrainingRun) -> str:
    """The Launch page of the run's template, filled with the run's parameters."""
    return reverse("admin:training_trainingrun_launch", args=[run.template_id]) + f"?run={run.pk}"


def live_comparisons(run: TrainingRun, user) -> list[dict[str, Any]]:
    """The run against each version of its template live in the user's scenes: per metric, better or worse and by
    how much (the version the run itself became is marked as such)."""
    rows = []
    for live in live_models_for(template_id=run.template_id, user=user):
        headline = key_metric(run.metrics)
        changes = []
        for row in metric_rows(run.metrics):
            guide = metric_guide(row.name)
            change = guide.change(row.value, live.metrics.get(row.name)) if guide else None
            if change is not None:
                changes.append(
                    {
                        "label": row.label,
                        "value": row.shown,
                        "reference": human_number(live.metrics.get(row.name)),
                        "change": change,
                        "headline": headline is not None and headline[0] == row.name,
                    }
                )
        try:
            scene_url = reverse("admin:deploy_scene_change", args=[live.scene_id])
        except NoReverseMatch:
            scene_url = None
        rows.append({"live": live, "is_this_run": live.run_id == run.pk, "changes": changes, "scene_url": scene_url})
    return rows


def _register_url(run: TrainingRun) -> str | None:
    """The page registering the run as the next version of a scene (the deploy app's, found by its URL name),
    when the run can be registered and that page exists."""
    if run.status != TrainingRun.Status.SUCCEEDED or run.artifact_id is None:
        return None
    try:
        return reverse("admin:deploy_scene_register_run", args=[run.pk])
    except NoReverseMatch:
        return None
