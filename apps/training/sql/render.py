"""Rendering the tree in a dialect, and the wrappers the preview uses."""

from __future__ import annotations

import sqlglot
from sqlglot import exp

# Engines of data sources → the sqlglot dialect their SQL is written in (MaxCompute SQL is Hive's).
DIALECTS = {"duckdb": "duckdb", "mysql": "mysql", "hive": "hive", "maxcompute": "hive", "spark": "spark"}


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
