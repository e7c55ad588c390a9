"""The profile of a source's tables: row count, the date range of the partition column, and which integer
columns have few distinct values. Generated like the sample query: identifiers only from the allow-list,
always quoted; the only literal is the row limit of the distinct-count sample.

    SELECT COUNT(*) AS "row_count", MIN("ds") AS "first_day", MAX("ds") AS "last_day" FROM "impressions"
    SELECT COUNT(DISTINCT "hour") AS "hour", … FROM (SELECT "hour", … FROM "impressions" LIMIT 100000) AS "head"
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from apps.training.datasources.types import DATE, NUMBER, TEXT, TIMESTAMP, column_kind

# Names a date partition column usually has, in order of preference (else the first date column).
PARTITION_NAMES = ("ds", "dt", "pt", "partition_date", "event_date", "date", "day")
FEW_VALUES_MAX = 30  # distinct values in the first DISTINCT_SAMPLE_ROWS rows, at most, for a category (hour: 24)
DISTINCT_SAMPLE_ROWS = 100_000
_INTEGER_TYPES = ("tinyint", "smallint", "mediumint", "int", "integer", "bigint", "hugeint", "utinyint", "usmallint",
                  "uinteger", "ubigint", "int1", "int2", "int4", "int8")  # fmt: skip


def partition_column_of(columns: Mapping[str, str]) -> str | None:
    """The column a table is partitioned by day on: a date (or date-time, or text named like one) column named
    ds, dt, pt…, else the first date column; None when there is none."""
    kinds = {name: column_kind(type_name) for name, type_name in columns.items()}
    for name in PARTITION_NAMES:
        for column, kind in kinds.items():
            if column.lower() == name and kind in (DATE, TIMESTAMP, TEXT):
                return column
    return next((column for column, kind in kinds.items() if kind in (DATE, TIMESTAMP)), None)


def integer_columns(columns: Mapping[str, str]) -> list[str]:
    """Whole-number columns (the ones that may be categories in disguise)."""
    return [
        name
        for name, type_name in columns.items()
        if column_kind(type_name) == NUMBER and type_name.strip().lower().split("(")[0].split()[0] in _INTEGER_TYPES
    ]


def table_count_query(table: str, *, partition_column: str | None) -> exp.Select:
    """Row count, and the first and last value of the partition column."""
    selected: list[exp.Expr] = [exp.alias_(exp.Count(this=exp.Star()), "row_count", quoted=True)]
    if partition_column:
        column = exp.column(partition_column, quoted=True)
        selected += [
            exp.alias_(exp.Min(this=column), "first_day", quoted=True),
            exp.alias_(exp.Max(this=column.copy()), "last_day", quoted=True),
        ]
    return exp.Select(expressions=selected).from_(exp.table_(table, quoted=True), copy=False)


def distinct_count_query(table: str, columns: list[str], *, sample_rows: int = DISTINCT_SAMPLE_ROWS) -> exp.Select:
    """Distinct values of each column among the table's first ``sample_rows`` rows."""
    head = (
        exp.Select(expressions=[exp.column(c, quoted=True) for c in columns])
        .from_(exp.table_(table, quoted=True), copy=False)
        .limit(exp.Literal.number(int(sample_rows)), copy=False)
    )
    counts = [
        exp.alias_(exp.Count(this=exp.Distinct(expressions=[exp.column(c, quoted=True)])), c, quoted=True)
        for c in columns
    ]
    return exp.Select(expressions=counts).from_(head.subquery("head", copy=False), copy=False)
