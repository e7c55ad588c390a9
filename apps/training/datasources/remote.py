"""MaxCompute and Hive: the SQL is generated here (Hive dialect) and runs on the PAI side.

This machine holds no credentials for them, so executing says so. Their allow-list can be declared in the
data source's options as ``{"tables": {table: {column: type}}}`` so that the sample can be validated and
its SQL generated without a connection.
"""

from __future__ import annotations

from .base import Backend, Schema, allowed_schema
from .errors import BackendNotAvailable
from .sample_data import SampleColumns, SampleData


class RemoteBackend(Backend):
    dialect = "hive"
    executable = False
    label = "Hive"

    def _refuse(self) -> BackendNotAvailable:
        return BackendNotAvailable(
            f"Data source {self.name!r} is on {self.label}: this machine has no credentials to run queries there. "
            "The SQL is generated in its dialect and runs with the PAI job."
        )

    def introspect(self) -> Schema:
        declared = self.options.get("tables")
        if not isinstance(declared, dict) or not declared:
            raise BackendNotAvailable(
                f"Data source {self.name!r} is on {self.label}: this machine has no credentials to read its schema. "
                'Declare the tables in its options as {"tables": {table: {column: type}}}.'
            )
        rows = [
            (table, column, type_name)
            for table, cols in declared.items()
            if isinstance(cols, dict)
            for column, type_name in cols.items()
        ]
        return allowed_schema(rows)

    def fetch(
        self, sql: str, *, columns: SampleColumns, chunk_rows: int, timeout: int, access_token: str | None = None
    ) -> SampleData:
        raise self._refuse()

    def count(self, sql: str, *, timeout: int, access_token: str | None = None) -> int:
        raise self._refuse()

    def fetch_one(self, sql: str, *, timeout: int) -> tuple:
        raise self._refuse()


class MaxComputeBackend(RemoteBackend):
    label = "MaxCompute"  # MaxCompute SQL is rendered with the Hive dialect


class HiveBackend(RemoteBackend):
    label = "Hive"
