"""The sample query tree: select list, joins, label, filters, date window, down-sampling, limit."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from apps.training.datasources.sample_data import SampleColumns
from apps.training.datasources.types import DATE, NUMBER, TIMESTAMP

from .allowlist import Columns, SampleTypes, check_sample_columns, resolve_column_owners
from .render import render

HASH_DIGITS = 8


@dataclass(frozen=True)
class SampleQuery:
    """The expression tree of a sample and the columns it returns."""

    expression: exp.Select
    columns: SampleColumns

    def sql(self, dialect: str, *, pretty: bool = True) -> str:
        return render(self.expression, dialect, pretty=pretty)


def build_sample_query(cleaned: Mapping[str, Any], *, columns: Columns, task: str) -> SampleQuery:
    """The sample node's validated parameters + the allow-list + the task → the query tree.

    ``cleaned`` must have passed :func:`check_sample_columns` with the same allow-list (validation does it);
    anything else raises NodeValidationError rather than building a query.
    """
    check_sample_columns(cleaned, columns, task)
    owners = resolve_column_owners(cleaned, columns)
    types = SampleTypes(cleaned, columns, owners)
    label = cleaned["label"]
    selected = [
        *(exp.alias_(exp.cast(types.ref(f), exp.DataType.Type.DOUBLE), f, quoted=True) for f in cleaned["features"]),
        *(exp.alias_(types.ref(f), f, quoted=True) for f in cleaned["categorical_features"]),
        exp.alias_(_label_expression(types, task), label, quoted=True),
    ]
    query = exp.Select(expressions=selected).from_(exp.table_(cleaned["table"], quoted=True), copy=False)
    fact = cleaned["table"]
    for join in cleaned["joins"]:
        on = exp.EQ(
            this=exp.column(join["on"], table=fact, quoted=True),
            expression=exp.column(join["on"], table=join["table"], quoted=True),
        )
        query = query.join(exp.table_(join["table"], quoted=True), on=on, join_type="left", copy=False)

    conditions: list[exp.Expr] = [exp.Not(this=exp.Is(this=types.ref(label), expression=exp.Null()))]
    conditions += [types.condition(c) for c in cleaned.get("filters") or []]
    conditions += _window(types)
    if task == "binary" and cleaned.get("negative_ratio", 1.0) < 1.0:
        conditions.append(_down_sampling(types, cleaned["negative_ratio"]))
    where = conditions[0]
    for condition in conditions[1:]:
        where = exp.And(this=where, expression=condition)
    query = query.where(where, copy=False)
    if cleaned.get("limit"):
        query = query.limit(exp.Literal.number(int(cleaned["limit"])), copy=False)
    sample_columns = SampleColumns(
        numeric=tuple(cleaned["features"]),
        categorical=tuple(cleaned["categorical_features"]),
        label=label,
        task=task,
    )
    return SampleQuery(query, sample_columns)


def _label_expression(types: SampleTypes, task: str) -> exp.Expr:
    label = types.ref(types.cleaned["label"])
    if task == "regression":
        return exp.cast(label, exp.DataType.Type.DOUBLE)
    return exp.Case(
        ifs=[exp.If(this=exp.EQ(this=label, expression=types.positive_literal()), true=exp.Literal.number(1))],
        default=exp.Literal.number(0),
    )


def _window(types: SampleTypes) -> list[exp.Expr]:
    """The date window on the partition column: [date_from, date_to] both inclusive.

    Date and timestamp columns compare with dates (up to the day after date_to, so a timestamp on the last
    day counts); text columns with 'YYYY-MM-DD' strings; integer columns with YYYYMMDD numbers.
    """
    c = types.cleaned
    column = c.get("partition_column")
    if not column or not (c.get("date_from") or c.get("date_to")):
        return []
    ref, kind = types.ref(column), types.kind(column)
    result: list[exp.Expr] = []
    if kind in (DATE, TIMESTAMP):
        if c.get("date_from"):
            result.append(exp.GTE(this=ref, expression=_date(c["date_from"])))
        if c.get("date_to"):
            after = datetime.date.fromisoformat(c["date_to"]) + datetime.timedelta(days=1)
            result.append(exp.LT(this=ref, expression=_date(after.isoformat())))
        return result
    for bound, comparison in (("date_from", exp.GTE), ("date_to", exp.LTE)):
        if c.get(bound):
            if kind == NUMBER:
                value: exp.Expr = exp.Literal.number(c[bound].replace("-", ""))
            else:
                value = exp.Literal.string(c[bound])
            result.append(comparison(this=ref, expression=value))
    return result


def _date(iso: str) -> exp.Expr:
    return exp.cast(exp.Literal.string(iso), exp.DataType.Type.DATE)


def _down_sampling(types: SampleTypes, ratio: float) -> exp.Expr:
    """Keep positives, and negatives whose key hash falls below the ratio."""
    parts: list[exp.Expr] = []
    for i, column in enumerate(types.sample_key()):
        if i:
            parts.append(exp.Literal.string("|"))
        text = exp.cast(types.ref(column), exp.DataType.Type.TEXT)
        parts.append(exp.Coalesce(this=text, expressions=[exp.Literal.string("")]))
    digest = exp.Substring(
        this=exp.MD5(this=exp.Concat(expressions=parts, safe=True)),
        start=exp.Literal.number(1),
        length=exp.Literal.number(HASH_DIGITS),
    )
    threshold = exp.Literal.string(hash_threshold(ratio))
    positive = exp.EQ(this=types.ref(types.cleaned["label"]), expression=types.positive_literal())
    return exp.Paren(this=exp.Or(this=positive, expression=exp.LT(this=digest, expression=threshold)))


def hash_threshold(ratio: float) -> str:
    """The lowercase hex prefix below which a key hash is kept: ``ratio × 16⁸``, as 8 hex digits."""
    return f"{min(int(ratio * 16**HASH_DIGITS), 16**HASH_DIGITS - 1):0{HASH_DIGITS}x}"
