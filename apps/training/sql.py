"""The sample SQL: the sample node's parameters → a sqlglot expression tree → SQL in the source's dialect.

Two rules make it safe. Identifiers come only from the data source's allow-list (introspected tables and
columns), are qualified by their table and always quoted. Values typed by a user become sqlglot literals of
the column's kind (a number, a string, a boolean, a date), never text spliced into SQL; a value of the
wrong kind for its column is a field error.

The query::

    SELECT CAST(feature AS DOUBLE) AS feature, …, categorical AS categorical, …, <label expression> AS label
    FROM fact LEFT JOIN dim ON fact.key = dim.key …
    WHERE label IS NOT NULL AND <filters> AND <date window> AND <negative down-sampling>
    LIMIT n

Binary label: ``CASE WHEN label = positive_value THEN 1 ELSE 0 END``; regression: ``CAST(label AS DOUBLE)``.
Down-sampling keeps every positive and a negative when the first 8 hex digits of
``MD5(key columns joined by '|')`` sort below ``ratio × 16⁸``: the same rows on every run and every engine.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

from apps.templates.nodes import NodeValidationError
from apps.training.datasources.sample_data import SampleColumns
from apps.training.datasources.types import BOOLEAN, DATE, NUMBER, TEXT, TIMESTAMP, column_kind

Columns = Mapping[str, Mapping[str, str]]  # table → {column: type}

# Engines of data sources → the sqlglot dialect their SQL is written in (MaxCompute SQL is Hive's).
DIALECTS = {"duckdb": "duckdb", "mysql": "mysql", "hive": "hive", "maxcompute": "hive", "spark": "spark"}
HASH_DIGITS = 8
LIKE_ESCAPE = "\\"


# -- the allow-list -----------------------------------------------------------------------------------------
def resolve_column_owners(cleaned: Mapping[str, Any], columns: Columns) -> dict[str, str]:
    """Map each column reachable from the sample's tables to the one table it is read from.

    A join key is read from the fact table. A column present in two joined tables (other than a join key)
    is ambiguous and left out, so that naming it is an error.
    """
    tables = [cleaned["table"], *(j["table"] for j in cleaned["joins"])]
    join_keys = {j["on"] for j in cleaned["joins"]}
    owners: dict[str, str] = {}
    ambiguous: set[str] = set()
    for table in tables:
        for column in columns.get(table, {}):
            if column in owners and column not in join_keys:
                ambiguous.add(column)
            owners.setdefault(column, table)
    for column in ambiguous:
        owners.pop(column, None)
    return owners


def check_sample_columns(cleaned: Mapping[str, Any], columns: Columns, task: str | None = None) -> None:
    """Raise NodeValidationError naming each parameter whose tables, columns or values do not fit the allow-list.

    Checks that tables and columns exist, that numeric features are numbers, that filter values and the
    positive value have the kind of their column, and (given the task) that the label and the down-sampling
    key make sense.
    """
    errors: dict[str, list[str]] = {}
    known_tables = sorted(columns)
    if cleaned["table"] not in columns:
        raise NodeValidationError({"table": f"No such table. Tables: {', '.join(known_tables)}."})
    base_columns = columns[cleaned["table"]]
    seen_tables = {cleaned["table"]}
    for join in cleaned["joins"]:
        if join["table"] not in columns:
            errors.setdefault("joins", []).append(f"No such table: {join['table']}.")
        elif join["table"] in seen_tables:
            errors.setdefault("joins", []).append(f"{join['table']} is joined twice.")
        elif join["on"] not in base_columns or join["on"] not in columns[join["table"]]:
            errors.setdefault("joins", []).append(
                f"{join['on']} is not a column of both {cleaned['table']} and {join['table']}."
            )
        seen_tables.add(join["table"])
    if errors:
        raise NodeValidationError(errors)

    owners = resolve_column_owners(cleaned, columns)

    def check(param: str, names: list[str]) -> None:
        missing = [n for n in names if n not in owners]
        if missing:
            errors.setdefault(param, []).append(
                f"Not a column of the chosen tables (or in two of them): {', '.join(missing)}."
            )

    for param in ("label", "partition_column"):
        if cleaned.get(param):
            check(param, [cleaned[param]])
    for param in ("features", "categorical_features", "sample_key"):
        check(param, cleaned.get(param) or [])
    check("filters", [c["column"] for c in cleaned.get("filters") or []])
    if errors:
        raise NodeValidationError(errors)
    SampleTypes(cleaned, columns, owners).check(task)


class SampleTypes:
    """Kinds of the sample's columns, and the literals of values compared with them."""

    def __init__(self, cleaned: Mapping[str, Any], columns: Columns, owners: Mapping[str, str]):
        self.cleaned = cleaned
        self.columns = columns
        self.owners = owners

    def type_of(self, column: str) -> str:
        return self.columns[self.owners[column]][column]

    def kind(self, column: str) -> str:
        return column_kind(self.type_of(column))

    def check(self, task: str | None) -> None:
        errors: dict[str, list[str]] = {}
        c = self.cleaned
        not_numbers = [f for f in c["features"] if self.kind(f) not in (NUMBER, BOOLEAN)]
        if not_numbers:
            errors["features"] = [
                f"Not numeric: {', '.join(f'{n} ({self.type_of(n)})' for n in not_numbers)}. "
                "Put them in the categorical features."
            ]
        if task == "regression" and self.kind(c["label"]) != NUMBER:
            errors["label"] = [f"A regression label must be numeric; {c['label']} is {self.type_of(c['label'])}."]
        if task == "binary":
            try:
                self.positive_literal()
            except ValueError as exc:
                errors["positive_value"] = [str(exc)]
        if c.get("partition_column") and self.kind(c["partition_column"]) not in (DATE, TIMESTAMP, TEXT, NUMBER):
            errors["partition_column"] = [
                f"{c['partition_column']} ({self.type_of(c['partition_column'])}) cannot hold dates."
            ]
        for index, condition in enumerate(c.get("filters") or [], start=1):
            try:
                self.condition(condition)
            except ValueError as exc:
                errors.setdefault("filters", []).append(f"Row {index} ({condition['column']} {condition['op']}): {exc}")
        if task == "binary" and c.get("negative_ratio", 1.0) < 1.0 and not self.sample_key():
            errors["sample_key"] = [
                "Down-sampling needs key columns to hash: choose a sample key (or join tables, or a partition column)."
            ]
        if errors:
            raise NodeValidationError(errors)

    # -- literals ---------------------------------------------------------------------------------------
    def literal(self, column: str, value: Any) -> exp.Expr:
        """``value`` as a literal of ``column``'s kind; ValueError when it does not fit."""
        kind = self.kind(column)
        type_name = self.type_of(column)
        if kind == NUMBER:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{column} holds numbers ({type_name}); {value!r} is not a number.")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError("Numbers must be finite.")
            return exp.Literal.number(repr(value) if isinstance(value, float) else str(value))
        if kind == BOOLEAN:
            if isinstance(value, bool):
                return exp.Boolean(this=value)
            if isinstance(value, int) and value in (0, 1):
                return exp.Boolean(this=bool(value))
            raise ValueError(f"{column} holds true/false ({type_name}); {value!r} is not a boolean.")
        if kind == TEXT:
            if not isinstance(value, str):
                raise ValueError(f"{column} holds text ({type_name}); give the value as text.")
            return exp.Literal.string(value)
        if kind == DATE:
            return exp.cast(exp.Literal.string(_iso_date(value, column)), exp.DataType.Type.DATE)
        if kind == TIMESTAMP:
            return exp.cast(exp.Literal.string(_iso_timestamp(value, column)), exp.DataType.Type.TIMESTAMP)
        raise ValueError(f"{column} has type {type_name}, which filters cannot compare.")

    def positive_literal(self) -> exp.Expr:
        label, text = self.cleaned["label"], self.cleaned.get("positive_value")
        if text is None:
            raise ValueError("A binary template needs the positive label value.")
        kind = self.kind(label)
        if kind == NUMBER:
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"{label} holds numbers; {text!r} is not a number.") from None
            if not math.isfinite(number):
                raise ValueError("The positive value must be a finite number.")
            return self.literal(label, int(number) if number.is_integer() else number)
        if kind == BOOLEAN:
            lowered = text.strip().lower()
            if lowered not in ("1", "0", "true", "false"):
                raise ValueError(f"{label} holds true/false; the positive value is true, false, 1 or 0.")
            return exp.Boolean(this=lowered in ("1", "true"))
        return self.literal(label, text)

    def condition(self, condition: Mapping[str, Any]) -> exp.Expr:
        """One filter row as a predicate; ValueError when a value does not fit its column."""
        column, op, value = condition["column"], condition["op"], condition.get("value")
        ref = self.ref(column)
        if op == "is null":
            return exp.Is(this=ref, expression=exp.Null())
        if op == "is not null":
            return exp.Not(this=exp.Is(this=ref, expression=exp.Null()))
        if op == "like":
            if self.kind(column) != TEXT:
                raise ValueError(f"'like' applies to text columns; {column} is {self.type_of(column)}.")
            pattern = exp.Literal.string(f"%{escape_like(value)}%")
            return exp.Escape(this=exp.Like(this=ref, expression=pattern), expression=exp.Literal.string(LIKE_ESCAPE))
        if op in ("in", "not in"):
            predicate = exp.In(this=ref, expressions=[self.literal(column, v) for v in value])
            return exp.Not(this=predicate) if op == "not in" else predicate
        if op == "between":
            return exp.Between(this=ref, low=self.literal(column, value[0]), high=self.literal(column, value[1]))
        comparison = {"=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}[op]
        return comparison(this=ref, expression=self.literal(column, value))

    def ref(self, column: str) -> exp.Column:
        return exp.column(column, table=self.owners[column], quoted=True)

    def sample_key(self) -> list[str]:
        c = self.cleaned
        if c.get("sample_key"):
            return list(c["sample_key"])
        keys = [j["on"] for j in c["joins"]]
        if c.get("partition_column"):
            keys.insert(0, c["partition_column"])
        return list(dict.fromkeys(keys))


def escape_like(text: str) -> str:
    """Text matched as a substring by LIKE: the escape character, % and _ lose their meaning."""
    return text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")


def _iso_date(value: Any, column: str) -> str:
    if isinstance(value, str) and len(value) == 10:
        try:
            return datetime.date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise ValueError(f"{column} holds dates; give the value as YYYY-MM-DD.")


def _iso_timestamp(value: Any, column: str) -> str:
    if isinstance(value, str) and 10 <= len(value) <= 26:
        try:
            return datetime.datetime.fromisoformat(value).replace(tzinfo=None).isoformat(sep=" ")
        except ValueError:
            pass
    raise ValueError(f"{column} holds date-times; give the value as YYYY-MM-DD or YYYY-MM-DD HH:MM:SS.")


# -- the query ----------------------------------------------------------------------------------------------
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


# -- rendering ----------------------------------------------------------------------------------------------
def render(expression: exp.Expr, dialect: str, *, pretty: bool = True) -> str:
    """The tree as SQL of ``dialect`` (an engine name or a sqlglot dialect)."""
    dialect = DIALECTS.get(dialect, dialect)
    tree = expression
    if dialect == "hive":
        # Hive's LIKE has no ESCAPE clause; its escape character is the backslash we use.
        tree = expression.transform(lambda node: node.this if isinstance(node, exp.Escape) else node)
    return tree.sql(dialect=dialect, pretty=pretty, identify=True)


def count_query(query: exp.Select) -> exp.Select:
    """``SELECT COUNT(*) FROM (query) AS sample``."""
    return exp.select(exp.Count(this=exp.Star())).from_(query.subquery("sample", copy=True), copy=False)


def limited(query: exp.Select, rows: int) -> exp.Select:
    """The same query returning at most ``rows`` rows (its own limit still applies)."""
    current = query.args.get("limit")
    if current is not None:
        rows = min(rows, int(current.expression.this))
    return query.limit(exp.Literal.number(rows), copy=True)


def parse(sql: str, dialect: str) -> exp.Expr:
    """Parse SQL of a dialect back into a tree (used to check that rendering loses nothing)."""
    return sqlglot.parse_one(sql, read=DIALECTS.get(dialect, dialect))
