"""The data-source side of the admin Launch page: the source picker, its allow-list, and Preview.

The page's form is generated from node metadata (forms.py); this module feeds it the chosen source's
introspected tables and columns, and runs ``prepare_launch`` and the sample preview for Validate/Preview.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from apps.templates.forms import dump_json
from apps.templates.nodes.base import OPERATORS
from apps.templates.validation import RunParamsInvalid


@dataclass
class LaunchSource:
    datasources: list
    datasource: Any = None
    columns: dict | None = None
    error: str | None = None
    tables: list = field(default_factory=list)

    def context(self) -> dict[str, Any]:
        from apps.training.models import TrainingRun

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
    from apps.training.apis.datasources import schema_tables
    from apps.training.datasources import DataSourceError
    from apps.training.selectors import datasource_list, datasource_schema

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
        source.columns = datasource_schema(datasource=source.datasource)
    except DataSourceError as exc:
        source.error = str(exc)
        return source
    source.tables = schema_tables(source.columns)
    return source


def launch_preview(request, template, form, datasource) -> dict[str, Any]:
    """Validate through ``prepare_launch`` (SQL and payload); with Preview, also run the sample's head."""
    from apps.training.datasources import DataSourceError, EngineNotAvailable
    from apps.training.launch import prepare_launch
    from apps.training.selectors import sample_preview

    try:
        prepared = prepare_launch(
            template=template,
            params=form.submitted_params(),
            datasource=datasource,
            engine=request.POST.get("engine") or "local",
        )
    except RunParamsInvalid as invalid:
        form._add_run_errors(invalid.errors)
        return {}
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            for message in messages:
                form.add_error(None, f"{name}: {message}")
        return {}
    context: dict[str, Any] = {
        "validated": True,
        "payload_json": dump_json(prepared.payload),
        "params_json": dump_json(prepared.masked),
        "sql": prepared.sql,
    }
    if "_preview" in request.POST:
        try:
            preview = sample_preview(prepared=prepared)
        except EngineNotAvailable as exc:
            context["preview_error"] = str(exc)
        except DataSourceError as exc:
            context["preview_error"] = str(exc)
        else:
            context["preview"] = preview
    return context


def launch_run(request, template, form, datasource):
    """Create the run (the same service as POST /api/v1/runs/). Returns the run, or None after putting the
    errors on the form."""
    from apps.training.services import training_run_create

    try:
        return training_run_create(
            template=template,
            params=form.submitted_params(),
            engine=request.POST.get("engine") or "local",
            datasource=datasource,
            user=request.user,
        )
    except RunParamsInvalid as invalid:
        form._add_run_errors(invalid.errors)
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            for message in messages:
                form.add_error(None, f"{name}: {message}")
    return None
