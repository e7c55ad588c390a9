"""The one place where a run's parameters become SQL and a payload: ``prepare_launch``.

Run creation (``training_run_create``), the preview API and the admin Launch page all call it.
It validates the parameters against the template with the data source's allow-list, builds the sample
query, renders it in the source's dialect and assembles the payload.

The payload is :func:`apps.templates.payload.build_payload`'s (every node, exclusion flags applied) plus:

``"sample"``: what a trainer needs to read the sample::

    {
      "node": "sample",                 # the sample node's key
      "dialect": "duckdb",              # dialect of the generated SQL (MaxCompute → "hive")
      "numeric": ["age", …],            # output columns, float64 (NaN = missing), in this order
      "categorical": ["gender", …],     # output columns, str or None (missing), in this order
      "label": "clicked",               # output column of the label, float64
      "label_kind": "binary",           # "binary": 1.0 when the label equals positive_value, else 0.0;
                                        # "regression": the value
      "positive_value": "1"             # binary only, as configured
    }

These are the column names of :class:`~apps.training.datasources.SampleData` and of a saved sample file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from apps.templates.models import AlgorithmTemplate
from apps.templates.nodes import NodeKind, NodeValidationError
from apps.templates.payload import build_payload, mask_secrets, secret_values
from apps.templates.validation import (
    NodeSpec,
    RunParamsInvalid,
    chain_errors,
    template_specs,
    validate_run_params,
)

from .datasources import DataSourceError, Schema
from .models import DataSource, TrainingRun
from .selectors import datasource_schema
from .sql import DIALECTS, SampleQuery, SchemaAllowList, build_sample_query, render

ENGINES = tuple(TrainingRun.Engine.values)


@dataclass(frozen=True)
class PreparedLaunch:
    """Everything a run needs before it starts. ``secrets`` is for executing only: never store or show it."""

    template: AlgorithmTemplate
    datasource: DataSource
    engine: str
    specs: list[NodeSpec]
    cleaned: dict[str, dict[str, Any]]
    masked: dict[str, dict[str, Any]]
    payload: dict[str, Any]
    sql: str
    dialect: str
    query: SampleQuery
    sample_node: str
    columns: Schema
    secrets: dict[str, dict[str, Any]] = field(repr=False)

    @property
    def sample_params(self) -> dict[str, Any]:
        return self.cleaned[self.sample_node]

    @property
    def access_token(self) -> str | None:
        """The sample node's secret, for the data source session only."""
        return self.secrets.get(self.sample_node, {}).get("access_token")


def prepare_launch(
    *, template: AlgorithmTemplate, params: Mapping[str, Any], datasource: DataSource, engine: str
) -> PreparedLaunch:
    """Validate ``params`` for ``template`` against ``datasource``'s allow-list and build SQL and payload.

    Raises ValidationError naming ``engine`` or ``datasource`` for problems with those (an unreachable
    source included), and RunParamsInvalid with errors keyed ``{node: {param: [message]}}`` for bad params.
    """
    if engine not in ENGINES:
        raise ValidationError({"engine": f"Choose one of: {', '.join(ENGINES)}."})
    try:
        columns = datasource_schema(datasource=datasource)
    except DataSourceError as exc:
        raise ValidationError({"datasource": str(exc)}) from None
    specs = template_specs(template)
    broken = chain_errors(template.task_type, [spec.node_type.key for spec in specs])
    if broken:
        raise ValidationError({"template": f"Template {template.slug} cannot run: {' '.join(broken)}"})
    sample_node = next(spec.key for spec in specs if spec.node_type.kind == NodeKind.SAMPLE)
    cleaned = validate_run_params(template, params, allowlist=SchemaAllowList(columns), specs=specs)
    try:
        query = build_sample_query(cleaned[sample_node], columns=columns, task=template.task_type)
    except NodeValidationError as exc:  # validation ran the same checks; kept for a template edited meanwhile
        raise RunParamsInvalid({sample_node: exc.errors}) from None
    dialect = DIALECTS[datasource.kind]
    payload = build_payload(template_slug=template.slug, task=template.task_type, specs=specs, cleaned=cleaned)
    payload["sample"] = _sample_payload(query, sample_node, dialect, cleaned[sample_node])
    return PreparedLaunch(
        template=template,
        datasource=datasource,
        engine=engine,
        specs=specs,
        cleaned=cleaned,
        masked=mask_secrets(specs, cleaned),
        payload=payload,
        sql=render(query.expression, dialect, pretty=True),
        dialect=dialect,
        query=query,
        sample_node=sample_node,
        columns=columns,
        secrets=secret_values(specs, cleaned),
    )


def _sample_payload(query: SampleQuery, node: str, dialect: str, sample: Mapping[str, Any]) -> dict[str, Any]:
    columns = query.columns
    described: dict[str, Any] = {
        "node": node,
        "dialect": dialect,
        "numeric": list(columns.numeric),
        "categorical": list(columns.categorical),
        "label": columns.label,
        "label_kind": columns.task,
    }
    if columns.task == "binary":
        described["positive_value"] = sample.get("positive_value")
    return described
