"""The Launch page: a template's generated form, the data source picker and its allow-list, Validate, Preview
and Launch.

The form comes from the template's node metadata (``apps.templates.forms``); this page feeds it the chosen
source's tables and columns, validates through ``prepare_launch`` (the SQL and the payload), runs the sample's
head for Preview, and creates the run with the same service as ``POST /api/v1/runs/``. A template's admin page
links here by URL name (``admin:training_trainingrun_launch``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from apps.templates.forms import LaunchForm, dump_json, launch_form_class
from apps.templates.models import AlgorithmTemplate
from apps.templates.nodes.base import OPERATORS
from apps.templates.payload import build_payload, mask_secrets
from apps.templates.selectors import template_list
from apps.templates.validation import RunParamsInvalid

from ..datasources import BackendNotAvailable, DataSourceError
from ..launch import prepare_launch
from ..models import DataSource, TrainingRun
from ..selectors import datasource_list, datasource_schema, sample_preview, schema_tables
from ..services import training_run_create
from ..sql import SchemaAllowList


@dataclass
class LaunchSource:
    """The data source picked on the page, its allow-list (None until read) and why it could not be read."""

    datasources: list[DataSource]
    datasource: DataSource | None = None
    allowlist: SchemaAllowList | None = None
    error: str | None = None
    tables: list = field(default_factory=list)

    def context(self) -> dict[str, Any]:
        return {
            "engines": TrainingRun.Engine.choices,
            "datasources": self.datasources,
            "datasource": self.datasource,
            "source_error": self.error,
            "schema_tables": self.tables,
            "operators": list(OPERATORS),
        }


def launch_source(request) -> LaunchSource:
    """The data source picked on the page (POST field, else ?datasource=, else the first one) and its tables."""
    sources = list(datasource_list())
    picked = request.POST.get("datasource") if request.method == "POST" else request.GET.get("datasource")
    if picked is None:
        picked = sources[0].name if sources else ""
    source = LaunchSource(sources)
    if not picked:
        return source
    source.datasource = next((d for d in sources if d.name == picked), None)
    if source.datasource is None:
        source.error = f"No data source named {picked!r}."
        return source
    try:
        columns = datasource_schema(datasource=source.datasource)
    except DataSourceError as exc:
        source.error = str(exc)
        return source
    source.allowlist = SchemaAllowList(columns)
    source.tables = schema_tables(columns)
    return source


def _errors_on_form(form: LaunchForm, exc: RunParamsInvalid | ValidationError) -> None:
    if isinstance(exc, RunParamsInvalid):
        form._add_run_errors(exc.errors)
        return
    for name, messages_ in exc.message_dict.items():
        for message in messages_:
            form.add_error(None, f"{name}: {message}")


def launch_preview(request, template: AlgorithmTemplate, form: LaunchForm, datasource: DataSource) -> dict[str, Any]:
    """Validate through ``prepare_launch`` (SQL and payload); with Preview, also run the sample's head."""
    try:
        prepared = prepare_launch(
            template=template,
            params=form.submitted_params(),
            datasource=datasource,
            engine=request.POST.get("engine") or "local",
        )
    except (RunParamsInvalid, ValidationError) as exc:
        _errors_on_form(form, exc)
        return {}
    context: dict[str, Any] = {
        "validated": True,
        "payload_json": dump_json(prepared.payload),
        "params_json": dump_json(prepared.masked),
        "sql": prepared.sql,
    }
    if "_preview" in request.POST:
        try:
            context["preview"] = sample_preview(prepared=prepared)
        except (BackendNotAvailable, DataSourceError) as exc:
            context["preview_error"] = str(exc)
    return context


def launch_payload(template: AlgorithmTemplate, form: LaunchForm) -> dict[str, Any]:
    """Without a data source: the validated parameters and the payload, with no SQL."""
    payload = build_payload(
        template_slug=template.slug, task=template.task_type, specs=form.specs, cleaned=form.validated_params
    )
    return {
        "validated": True,
        "payload_json": dump_json(payload),
        "params_json": dump_json(mask_secrets(form.specs, form.validated_params)),
    }


def launch_run(request, template: AlgorithmTemplate, form: LaunchForm, datasource: DataSource) -> TrainingRun | None:
    """Create the run (the same service as POST /api/v1/runs/). Returns the run, or None after putting the
    errors on the form."""
    try:
        return training_run_create(
            template=template,
            params=form.submitted_params(),
            engine=request.POST.get("engine") or "local",
            datasource=datasource,
            user=request.user,
        )
    except (RunParamsInvalid, ValidationError) as exc:
        _errors_on_form(form, exc)
    return None


def launch_view(model_admin, request, template_id: int):
    """The page itself, served by the runs' admin (``TrainingRunAdmin.get_urls``)."""
    template = template_list(user=request.user).filter(pk=template_id).first()
    if template is None:
        raise Http404("No such template.")
    if not request.user.has_perm("training.add_trainingrun"):
        raise PermissionDenied
    source = launch_source(request)
    form = launch_form_class(template, allowlist=source.allowlist)(request.POST or None)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": AlgorithmTemplate._meta,  # the breadcrumbs lead back to the template
        "original": template,
        "template_obj": template,
        "title": f"Launch training · {template.name}",
        "form": form,
        "media": model_admin.media + form.media,
        **source.context(),
        "engine": request.POST.get("engine") or "local",
    }
    if request.method == "POST" and source.error:
        form.add_error(None, f"Data source: {source.error}")
    if request.method == "POST" and form.is_valid():
        if "_launch" in request.POST and source.datasource is not None:
            run = launch_run(request, template, form, source.datasource)
            if run is not None:
                model_admin.message_user(request, f"Run {run.pk} queued.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:training_trainingrun_change", args=[run.pk]))
        elif source.datasource is not None:
            context.update(launch_preview(request, template, form, source.datasource))
        else:
            context.update(launch_payload(template, form))
    return TemplateResponse(request, "admin/training/launch.html", context)
