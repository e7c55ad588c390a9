"""MySQL / MariaDB through mysqlclient: a server-side cursor streams the rows in chunks."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .base import ACCESS_TOKEN_VARIABLE, Backend, Schema, allowed_schema
from .errors import DataSourceUnavailable, QueryFailed, QueryTimeout
from .sample_data import SampleBuilder, SampleColumns, SampleData

# Server error codes: statement time limit (MariaDB 1969, MySQL 3024), query interrupted (1317).
_TIMEOUT_CODES = {1969, 3024, 1317}
# Client error codes meaning the server is out of reach or the connection was lost.
_UNREACHABLE_CODES = {2002, 2003, 2005, 2006, 2013, 1045, 1044, 1049}


def _mysqldb():
    # optional: mysqlclient compiles against libmariadb-dev, and only MySQL sources need it
    try:
        import MySQLdb
        import MySQLdb.cursors
    except ImportError:
        raise DataSourceUnavailable(
            "MySQL data sources need the mysqlclient package (pip install -r requirements-mysql.txt)."
        ) from None
    return MySQLdb


class MySQLBackend(Backend):
    dialect = "mysql"

    def _where(self) -> str:
        o = self.options
        return f"{o.get('host', '127.0.0.1')}:{o.get('port', 3306)}/{o.get('database', '')}"

    @contextmanager
    def connect(self, *, timeout: int | None = None):
        mysqldb = _mysqldb()
        o = self.options
        kwargs = {
            "host": str(o.get("host", "127.0.0.1")),
            "port": int(o.get("port", 3306)),
            "user": str(o.get("user", "")),
            "database": str(o.get("database", "")),
            "charset": "utf8mb4",
            "connect_timeout": int(o.get("connect_timeout", 5)),
            "cursorclass": mysqldb.cursors.SSCursor,
        }
        if timeout is not None:
            # A backstop for a server that stops answering: the statement limit below normally fires first.
            kwargs["read_timeout"] = timeout + 30
        password = self._password()
        if password is not None:
            kwargs["password"] = password
        try:
            con = mysqldb.connect(**kwargs)
        except mysqldb.Error as exc:
            code = exc.args[0] if exc.args else None
            reason = exc.args[1] if len(exc.args) > 1 else str(exc)
            raise DataSourceUnavailable(
                f"Data source {self.name!r}: cannot connect to MySQL at {self._where()} ({code}: {reason})."
            ) from None
        try:
            yield con
        finally:
            try:
                con.close()
            except mysqldb.Error:
                pass

    @contextmanager
    def _errors(self, timeout: int):
        mysqldb = _mysqldb()
        try:
            yield
        except mysqldb.Error as exc:
            code = exc.args[0] if exc.args else None
            if code in _TIMEOUT_CODES:
                raise QueryTimeout(timeout) from None
            if code in _UNREACHABLE_CODES:
                raise DataSourceUnavailable(f"Data source {self.name!r}: lost the connection ({exc}).") from None
            raise QueryFailed(f"Data source {self.name!r} refused the query: {exc}") from None

    @staticmethod
    def _session(cursor, access_token: str | None) -> None:
        if access_token is not None:
            cursor.execute(f"SET @{ACCESS_TOKEN_VARIABLE} = %s", (access_token,))

    def _limit_statement_time(self, cursor, timeout: int) -> None:
        if "mariadb" in cursor.connection.get_server_info().lower():
            cursor.execute("SET SESSION max_statement_time = %s", (float(timeout),))
        else:
            cursor.execute("SET SESSION max_execution_time = %s", (int(timeout * 1000),))

    def introspect(self) -> Schema:
        with self.connect() as con, self._errors(60):
            cursor = con.cursor()
            cursor.execute(
                "SELECT table_name, column_name, column_type FROM information_schema.columns "
                "WHERE table_schema = %s ORDER BY table_name, ordinal_position",
                (str(self.options.get("database", "")),),
            )
            rows = cursor.fetchall()
            cursor.close()
        return allowed_schema(rows)

    def count(self, sql: str, *, timeout: int, access_token: str | None = None) -> int:
        with self.connect(timeout=timeout) as con, self._errors(timeout):
            cursor = con.cursor()
            self._limit_statement_time(cursor, timeout)
            self._session(cursor, access_token)
            cursor.execute(sql)
            value = cursor.fetchone()[0]
            cursor.close()
        return int(value)

    def fetch_one(self, sql: str, *, timeout: int) -> tuple:
        with self.connect(timeout=timeout) as con, self._errors(timeout):
            cursor = con.cursor()
            self._limit_statement_time(cursor, timeout)
            cursor.execute(sql)
            row = cursor.fetchone()
            cursor.close()
        return tuple(row) if row is not None else ()

    def fetch(
        self, sql: str, *, columns: SampleColumns, chunk_rows: int, timeout: int, access_token: str | None = None
    ) -> SampleData:
        builder = SampleBuilder(columns)
        names, numeric = columns.names, set(columns.numeric)
        with self.connect(timeout=timeout) as con, self._errors(timeout):
            cursor = con.cursor()
            self._limit_statement_time(cursor, timeout)
            self._session(cursor, access_token)
            cursor.execute(sql)
            while True:
                rows = cursor.fetchmany(chunk_rows)
                if not rows:
                    break
                for name, values in zip(names, zip(*rows, strict=True), strict=True):
                    if name == columns.label:
                        builder.add_label(_floats(values))
                    elif name in numeric:
                        builder.add_numeric(name, _floats(values))
                    else:
                        builder.add_categorical_values(name, values)
                del rows
            cursor.close()
        return builder.finish({"source": self.name, "dialect": self.dialect})


def _floats(values) -> np.ndarray:
    # numpy turns None into NaN for a float64 array; Decimals and ints convert through float().
    return np.array(values, dtype=np.float64)
