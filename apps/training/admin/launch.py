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
from apps.templates.validation import RunParamsInvalid, template_chain_errors

from ..datasources import BackendNotAvailable, DataSourceError
from ..launch import prepare_launch
from ..models import DataSource, TrainingRun
from ..selectors import (
    datasource_allowlist,
    datasource_list,
    datasource_profile,
    sample_preview,
    schema_tables,
    training_run_list,
)
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
    profile: dict = field(default_factory=dict)

    def context(self) -> dict[str, Any]:
        return {
            "engines": TrainingRun.Engine.choices,
            "datasources": self.datasources,
            "datasource": self.datasource,
            "source_error": self.error,
            "schema_tables": self.tables,
            "table_profiles": [{"table": table, **entry} for table, entry in self.profile.items()],
            "operators": list(OPERATORS),
        }


def launch_source(request, *, default: str | None = None) -> LaunchSource:
    """The data source picked on the page (POST field, else ?datasource=, else ``default``, else the first one),
    its tables and their profile (row counts, date ranges)."""
    sources = list(datasource_list())
    picked = request.POST.get("datasource") if request.method == "POST" else request.GET.get("datasource", default)
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
        source.profile = datasource_profile(datasource=source.datasource)
        source.allowlist = datasource_allowlist(datasource=source.datasource, profile=source.profile)
    except DataSourceError as exc:
        source.error = str(exc)
        return source
    source.tables = schema_tables(source.allowlist.columns)
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


def launch_run(
    request, template: AlgorithmTemplate, form: LaunchForm, datasource: DataSource, relaunch_of: TrainingRun | None
) -> TrainingRun | None:
    """Create the run (the same service as POST /api/v1/runs/). Returns the run, or None after putting the
    errors on the form."""
    try:
        return training_run_create(
            template=template,
            params=form.submitted_params(),
            engine=request.POST.get("engine") or "local",
            datasource=datasource,
            user=request.user,
            retry_of=relaunch_of,
        )
    except (RunParamsInvalid, ValidationError) as exc:
        _errors_on_form(form, exc)
    return None


def relaunched_run(request, template: AlgorithmTemplate) -> TrainingRun | None:
    """The run "Edit and relaunch" started from (``?run=`` on the way in, ``relaunch_of`` when posted): one of
    the user's runs of this template, else None."""
    raw = request.POST.get("relaunch_of") if request.method == "POST" else request.GET.get("run")
    if not raw or not str(raw).isdigit():
        return None
    return training_run_list(user=request.user).filter(pk=int(raw), template=template).first()


def launch_view(model_admin, request, template_id: int):
    """The page itself, served by the runs' admin (``TrainingRunAdmin.get_urls``). With ``?run=N`` it opens
    filled with run N's parameters (secrets empty), its errors shown if they no longer validate."""
    template = template_list(user=request.user).filter(pk=template_id).first()
    if template is None:
        raise Http404("No such template.")
    if not request.user.has_perm("training.add_trainingrun"):
        raise PermissionDenied
    broken = template_chain_errors(template)
    if broken:
        model_admin.message_user(request, f"{template.name} cannot run: {' '.join(broken)}", messages.ERROR)
        return HttpResponseRedirect(reverse("admin:algo_templates_algorithmtemplate_change", args=[template.pk]))
    relaunch_of = relaunched_run(request, template)
    source = launch_source(request, default=relaunch_of.datasource.name if relaunch_of else None)
    form_class = launch_form_class(template, allowlist=source.allowlist)
    not_carried: list[str] = []
    if request.method == "POST":
        form = form_class(request.POST)
    elif relaunch_of is not None:
        data, not_carried = form_class.data_for(relaunch_of.params)
        form = form_class(data)
        form.is_valid()  # shows at once what no longer validates, next to its field
    else:
        form = form_class()
    engine = request.POST.get("engine") or (relaunch_of.engine if relaunch_of else "local")
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": AlgorithmTemplate._meta,  # the breadcrumbs lead back to the template
        "original": template,
        "template_obj": template,
        "title": f"Launch training · {template.name}",
        "form": form,
        "media": model_admin.media + form.media,
        **source.context(),
        "engine": engine,
        "relaunch_of": relaunch_of,
        "not_carried": not_carried,
        "secret_fields": [
            form[name].label
            for name, field in form.fields.items()
            if getattr(getattr(field, "param", None), "secret", False)
        ],
    }
    if request.method == "POST" and source.error:
        form.add_error(None, f"Data source: {source.error}")
    if request.method == "POST" and form.is_valid():
        if "_launch" in request.POST and source.datasource is not None:
            run = launch_run(request, template, form, source.datasource, relaunch_of)
            if run is not None:
                model_admin.message_user(request, f"Run {run.pk} queued.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:training_trainingrun_change", args=[run.pk]))
        elif source.datasource is not None:
            context.update(launch_preview(request, template, form, source.datasource))
        else:
            context.update(launch_payload(template, form))
    return TemplateResponse(request, "admin/training/launch.html", context)
