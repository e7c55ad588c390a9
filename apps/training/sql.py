"""The sample node's allow-list: every table and column a sample names must exist in the data source."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apps.templates.nodes import NodeValidationError

Columns = Mapping[str, Mapping[str, str]]  # table → {column: type}


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


def check_sample_columns(cleaned: Mapping[str, Any], columns: Columns) -> None:
    """Raise NodeValidationError naming each parameter whose tables or columns are not in the allow-list."""
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
