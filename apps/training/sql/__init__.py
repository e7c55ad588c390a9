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

from .allowlist import (
    LIKE_ESCAPE,
    Columns,
    SampleTypes,
    SchemaAllowList,
    check_sample_columns,
    escape_like,
    resolve_column_owners,
)
from .builder import HASH_DIGITS, SampleQuery, build_sample_query, hash_threshold
from .render import DIALECTS, count_query, limited, parse, render

__all__ = [
    "DIALECTS",
    "HASH_DIGITS",
    "LIKE_ESCAPE",
    "Columns",
    "SampleQuery",
    "SampleTypes",
    "SchemaAllowList",
    "build_sample_query",
    "check_sample_columns",
    "count_query",
    "escape_like",
    "hash_threshold",
    "limited",
    "parse",
    "render",
    "resolve_column_owners",
]
