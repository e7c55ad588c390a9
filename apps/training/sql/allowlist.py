"""The allow-list side of the sample SQL: which tables and columns exist, their kinds, and typed literals."""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from apps.templates.nodes import NodeValidationError
from apps.templates.nodes.base import DATE_MAX, DATE_MIN, FEW_VALUES
from apps.training.datasources.types import BOOLEAN, DATE, NUMBER, TEXT, TIMESTAMP, column_kind

Columns = Mapping[str, Mapping[str, str]]  # table → {column: type}
LIKE_ESCAPE = "\\"


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


@dataclass(frozen=True)
class SchemaAllowList:
    """A data source's introspected tables and columns, as the templates' validation and pickers ask for them
    (``apps.templates.nodes.ColumnAllowList``). ``few_values``: (table, column) of the integer columns with few
    distinct values, from the source's profile (``selectors.datasource_profile``)."""

    columns: Columns
    few_values: frozenset[tuple[str, str]] = frozenset()

    def column_traits(self, table: str, column: str) -> frozenset[str]:
        type_name = self.columns.get(table, {}).get(column)
        if type_name is None:
            return frozenset()
        traits = {column_kind(type_name)}
        if (table, column) in self.few_values:
            traits.add(FEW_VALUES)
        return frozenset(traits)

    def check_sample(self, cleaned: Mapping[str, Any], task: str) -> None:
        check_sample_columns(cleaned, self.columns, task)


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
        """One filter row as a predicate; ValueError when a value does not fit its column. The row is a cleaned
        condition (``ParamType.CONDITIONS``): 'like' has text, 'in', 'not in' and 'between' have lists."""
        column, op, value = condition["column"], condition["op"], condition.get("value")
        ref = self.ref(column)
        if op == "is null":
            return exp.Is(this=ref, expression=exp.Null())
        if op == "is not null":
            return exp.Not(this=exp.Is(this=ref, expression=exp.Null()))
        if op == "like":
            if self.kind(column) != TEXT:
                raise ValueError(f"'like' applies to text columns; {column} is {self.type_of(column)}.")
            assert isinstance(value, str)
            pattern = exp.Literal.string(f"%{escape_like(value)}%")
            return exp.Escape(this=exp.Like(this=ref, expression=pattern), expression=exp.Literal.string(LIKE_ESCAPE))
        if op in ("in", "not in"):
            assert isinstance(value, list)
            predicate = exp.In(this=ref, expressions=[self.literal(column, v) for v in value])
            return exp.Not(this=predicate) if op == "not in" else predicate
        if op == "between":
            assert isinstance(value, list)
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
            text = datetime.date.fromisoformat(value).isoformat()
        except ValueError:
            pass
        else:
            return _in_date_range(text, text, column)
    raise ValueError(f"{column} holds dates; give the value as YYYY-MM-DD.")


def _iso_timestamp(value: Any, column: str) -> str:
    if isinstance(value, str) and 10 <= len(value) <= 26:
        try:
            text = datetime.datetime.fromisoformat(value).replace(tzinfo=None).isoformat(sep=" ")
        except ValueError:
            pass
        else:
            return _in_date_range(text, text[:10], column)
    raise ValueError(f"{column} holds date-times; give the value as YYYY-MM-DD or YYYY-MM-DD HH:MM:SS.")


def _in_date_range(text: str, iso_date: str, column: str) -> str:
    """``text`` when its day is one every back end handles, as the date parameters declare them
    (``apps.templates.nodes.base.DATE_MIN`` / ``DATE_MAX``)."""
    if not DATE_MIN <= iso_date <= DATE_MAX:
        raise ValueError(f"{column}: dates run from {DATE_MIN} to {DATE_MAX}; {iso_date} is outside.")
    return text
