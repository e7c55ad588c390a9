"""The sample aggregation node: which rows and columns become the training sample.

Its parameters are turned into SQL by the training app's SQL builder; here they are declared and checked.
Column and table names are checked for their form always, and against the data source's allow-list (the
validation context's ``allowlist``) when the run names a data source.
"""

from __future__ import annotations

import datetime
from typing import Any

from .base import (
    BOOLEAN,
    DATE_MAX,
    FEW_VALUES,
    NUMBER,
    TEXT,
    Group,
    NodeKind,
    NodeType,
    NodeValidationError,
    Param,
    ParamType,
    ValidationContext,
    registry,
)

T = ParamType


@registry.register
class SqlSample(NodeType):
    key = "sample.sql"
    kind = NodeKind.SAMPLE
    label = "Sample (SQL)"
    description = (
        "Builds the training sample from a table of the data source, joined to dimension tables, with "
        "filters, a date window, negative down-sampling and a row limit. The SQL is generated; nothing "
        "typed here is ever sent to the database as SQL text."
    )
    params = (
        Param(
            "table",
            T.TABLE,
            "Source table",
            required=True,
            group=Group.FIELDS,
            help="The fact table: one row per sample (e.g. impressions).",
        ),
        Param(
            "joins",
            T.JOINS,
            "Joined tables",
            default=[],
            group=Group.FIELDS,
            max_items=8,
            help="Dimension tables joined on a key column present in both (e.g. users on user_id).",
        ),
        Param(
            "label",
            T.COLUMN,
            "Label column",
            required=True,
            group=Group.FIELDS,
            pai_name="labelColName",
            help="The column to predict.",
        ),
        Param(
            "positive_value",
            T.STR,
            "Positive label value",
            default="1",
            group=Group.FIELDS,
            pai_name="goodValue",
            help="Binary templates: rows whose label equals this value are positives.",
        ),
        Param(
            "features",
            T.COLUMNS,
            "Numeric features",
            default=[],
            group=Group.FIELDS,
            pai_name="featureColNames",
            max_items=200,
            accepts=(NUMBER, BOOLEAN),
            excludes=("label",),
            help="Numeric columns the model learns from.",
        ),
        Param(
            "categorical_features",
            T.COLUMNS,
            "Categorical features",
            default=[],
            group=Group.FIELDS,
            pai_name="categoricalColNames",
            max_items=200,
            accepts=(TEXT, BOOLEAN, FEW_VALUES),
            excludes=("label",),
            help="Columns whose values are categories (one-hot encoded by a one-hot node): text, and whole numbers "
            "with few distinct values.",
        ),
        Param(
            "partition_column",
            T.COLUMN,
            "Date partition column",
            group=Group.FIELDS,
            help="The date column of the source table the date window applies to (e.g. ds).",
        ),
        Param(
            "filters",
            T.CONDITIONS,
            "Filters",
            default=[],
            max_items=50,
            help="Rows of column / operator / value; all must hold.",
        ),
        Param("date_from", T.DATE, "From date", help="First day of the window, inclusive."),
        Param(
            "date_to",
            T.DATE,
            "To date",
            # On date and timestamp columns the window reads up to the day after date_to, which must be a date too.
            max=(datetime.date.fromisoformat(DATE_MAX) - datetime.timedelta(days=1)).isoformat(),
            help="Last day of the window, inclusive.",
        ),
        Param(
            "negative_ratio",
            T.FLOAT,
            "Negative sampling ratio",
            default=1.0,
            min=0.0,
            exclusive_min=True,
            max=1.0,
            help="Binary templates: keep this fraction of negative rows (1 keeps all). "
            "The choice is a hash of the sample key, so a rerun gives the same sample.",
        ),
        Param(
            "sample_key",
            T.COLUMNS,
            "Sample key",
            default=[],
            max_items=8,
            help="Columns hashed for down-sampling; empty means the join keys and the partition column.",
        ),
        Param("limit", T.INT, "Row limit", min=1, max=50_000_000, help="At most this many rows."),
        Param(
            "access_token",
            T.STR,
            "Access token",
            secret=True,
            help="Token some warehouses require on protected tables. Used to run the query only: never "
            "stored with the run, sent to PAI or written to a log.",
        ),
        Param(
            "preview_rows",
            T.INT,
            "Preview rows",
            default=20,
            min=1,
            max=200,
            serialize=False,
            help="Rows shown by Preview. Not part of the training payload.",
        ),
        Param(
            "chunk_rows",
            T.INT,
            "Fetch chunk rows",
            default=20_000,
            min=1_000,
            max=1_000_000,
            group=Group.TUNING,
            help="Rows fetched from the source per chunk; bounds the memory a fetch needs beyond the sample "
            "itself (20,000 keeps it under half the sample's size at a million rows).",
        ),
        Param(
            "timeout_seconds",
            T.INT,
            "Query timeout (s)",
            default=600,
            min=5,
            max=86_400,
            group=Group.TUNING,
            help="The sample query is stopped after this many seconds.",
        ),
    )

    def clean(self, cleaned: dict[str, Any], context: ValidationContext) -> None:
        errors: dict[str, str] = {}
        features, categorical = cleaned["features"], cleaned["categorical_features"]
        if not features and not categorical:
            errors["features"] = "Choose at least one feature column (numeric or categorical)."
        both = sorted(set(features) & set(categorical))
        if both:
            errors["categorical_features"] = f"Listed as numeric features too: {', '.join(both)}."
        label = cleaned["label"]
        if label in features or label in categorical:
            errors["label"] = "The label column cannot also be a feature."
        if cleaned["date_from"] and cleaned["date_to"] and cleaned["date_from"] > cleaned["date_to"]:
            errors["date_to"] = "The window ends before it starts."
        if (cleaned["date_from"] or cleaned["date_to"]) and not cleaned["partition_column"]:
            errors["partition_column"] = "A date window needs the date partition column."
        if errors:
            raise NodeValidationError(errors)
        if context.allowlist is not None:
            context.allowlist.check_sample(cleaned, context.task.value)

    def contribute(self, cleaned: dict[str, Any], context: ValidationContext) -> None:
        context.features = list(cleaned["features"])
        context.categorical_features = list(cleaned["categorical_features"])
        context.label = cleaned["label"]
