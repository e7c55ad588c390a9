"""Column types as introspected (engine spelling) → the kinds the SQL builder reasons about."""

from __future__ import annotations

import re

NUMBER = "number"
BOOLEAN = "boolean"
TEXT = "text"
DATE = "date"
TIMESTAMP = "timestamp"
OTHER = "other"

_BOOLEAN = re.compile(r"^(bool|boolean|tinyint\(1\)|bit\(1\))\b")
_NUMBER = re.compile(
    r"^(tinyint|smallint|mediumint|int|integer|bigint|hugeint|utinyint|usmallint|uinteger|ubigint|uhugeint|"
    r"int1|int2|int4|int8|decimal|numeric|dec|double|float|float4|float8|real)\b"
)
_TEXT = re.compile(r"^(varchar|char|character|text|tinytext|mediumtext|longtext|string|enum|set|uuid|nvarchar)\b")
_TIMESTAMP = re.compile(r"^(timestamp|datetime)\b")
_DATE = re.compile(r"^date\b")


def column_kind(type_name: str) -> str:
    """The kind of an introspected column type (DuckDB, MySQL/MariaDB, Hive/MaxCompute spellings)."""
    name = type_name.strip().lower()
    if _BOOLEAN.match(name):
        return BOOLEAN
    if _NUMBER.match(name):
        return NUMBER
    if _TEXT.match(name):
        return TEXT
    if _TIMESTAMP.match(name):
        return TIMESTAMP
    if _DATE.match(name):
        return DATE
    return OTHER
