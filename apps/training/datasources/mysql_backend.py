"""MySQL / MariaDB through mysqlclient: a server-side cursor streams the rows in chunks.

Before anything is sent the host must match MLAB_DATASOURCE_HOSTS, the TLS files must lie where
MLAB_DATASOURCE_TLS_PATHS allows and the password must come from an MLAB_DS_ variable (policy.py). Unless TLS
is verified (ssl_mode verify_ca or verify_identity, where the client library refuses to go on without TLS and
a trusted server certificate), the client accepts only authentication plugins that never send the password
in a readable form (SAFE_AUTH_PLUGINS). A failed connection says the same thing whatever the cause, so that
it cannot tell a closed port from an open one; the cause goes to the server log.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .base import ACCESS_TOKEN_VARIABLE, Backend, Schema, access_token_digest, allowed_schema
from .errors import DataSourceUnavailable, QueryFailed, QueryTimeout
from .policy import DEFAULT_MYSQL_HOST, host_allowed, tls_path_allowed
from .sample_data import SampleBuilder, SampleColumns, SampleData

logger = logging.getLogger(__name__)

# Server error codes: statement time limit (MariaDB 1969, MySQL 3024), query interrupted (1317).
_TIMEOUT_CODES = {1969, 3024, 1317}
# Client error codes meaning the server is out of reach or the connection was lost.
_UNREACHABLE_CODES = {2002, 2003, 2005, 2006, 2013, 1045, 1044, 1049}
# The client library refused the authentication plugin the server asked for (CR_PLUGIN_NOT_ALLOWED).
_PLUGIN_NOT_ALLOWED = 5010

# Authentication plugins that never put the password on the wire in a readable form (challenge-response,
# RSA-encrypted exchange, Ed25519, Kerberos). Without verified TLS the server may ask for these only:
# mysql_clear_password and dialog (PAM) send the password in clear text, and mysql_old_password's hash is broken.
SAFE_AUTH_PLUGINS = (
    "mysql_native_password",
    "caching_sha2_password",
    "sha256_password",
    "client_ed25519",
    "parsec",
    "auth_gssapi_client",
)
# MariaDB Connector/C reads that list from an option file ("restricted-auth"); mysqlclient has no keyword for it.
SAFE_AUTH_FILE = Path(__file__).with_name("mysql_safe_auth.cnf")
SAFE_AUTH_GROUP = "mlab-safe-auth"
# Where the client library itself refuses to authenticate without TLS and a server certificate it trusts.
# (With libmariadb, "required" goes on without TLS when the server offers none: it is checked once connected.)
VERIFIED_TLS_MODES = ("verify_ca", "verify_identity")
_TLS_FILES = {"ssl_ca": "ca", "ssl_cert": "cert", "ssl_key": "key"}


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
        return f"{o.get('host', DEFAULT_MYSQL_HOST)}:{o.get('port', 3306)}/{o.get('database', '')}"

    def _tls_kwargs(self) -> dict[str, Any]:
        """mysqlclient's TLS arguments from the ssl_* options, each file checked against the settings first."""
        kwargs: dict[str, Any] = {}
        files = {
            key: str(tls_path_allowed(self.options[option], option=option, source=self.name))
            for option, key in _TLS_FILES.items()
            if option in self.options
        }
        if files:
            kwargs["ssl"] = files
        mode = self.options.get("ssl_mode")
        if mode:
            kwargs["ssl_mode"] = str(mode).upper()
        if str(mode) not in VERIFIED_TLS_MODES:
            kwargs["read_default_file"] = str(SAFE_AUTH_FILE)
            kwargs["read_default_group"] = SAFE_AUTH_GROUP
        return kwargs

    @contextmanager
    def connect(self, *, timeout: int | None = None):
        o = self.options
        host = host_allowed(o.get("host", DEFAULT_MYSQL_HOST), source=self.name)  # before anything is sent
        tls = self._tls_kwargs()
        mysqldb = _mysqldb()
        kwargs = {
            "host": host,
            "port": int(o.get("port", 3306)),
            "user": str(o.get("user", "")),
            "database": str(o.get("database", "")),
            "charset": "utf8mb4",
            "connect_timeout": int(o.get("connect_timeout", 5)),
            "cursorclass": mysqldb.cursors.SSCursor,
            # A server must never be able to ask for a local file (LOAD DATA LOCAL INFILE) in answer to a query.
            "local_infile": 0,
            **tls,
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
            raise self._connect_error(exc) from None
        try:
            if o.get("ssl_mode") == "required":
                self._check_encrypted(con)
            yield con
        finally:
            try:
                con.close()
            except mysqldb.Error:
                pass

    def _connect_error(self, exc: Exception) -> DataSourceUnavailable:
        code = exc.args[0] if exc.args else None
        # The cause stays in the server log: told to the user, it would say whether the port is open.
        logger.warning("Data source %r: cannot connect to MySQL at %s: %s", self.name, self._where(), exc)
        if code == _PLUGIN_NOT_ALLOWED:
            return DataSourceUnavailable(
                f"Data source {self.name!r}: the MySQL server at {self._where()} asked for an authentication "
                "plugin that sends the password in a readable form (e.g. mysql_clear_password); it is used only "
                "over verified TLS: set ssl_mode to verify_identity (and ssl_ca), or change the account's plugin."
            )
        return DataSourceUnavailable(
            f"Data source {self.name!r}: cannot connect to MySQL at {self._where()}: the server is unreachable "
            "or refused the connection, the user or password, or TLS (the cause is in the server log)."
        )

    def _check_encrypted(self, con) -> None:
        cursor = con.cursor()
        cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        row = cursor.fetchone()
        cursor.close()
        if not row or not row[1]:
            raise DataSourceUnavailable(
                f"Data source {self.name!r}: ssl_mode is required, but the MySQL server at {self._where()} did "
                "not use TLS."
            )

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
            cursor.execute(f"SET @{ACCESS_TOKEN_VARIABLE} = %s", (access_token_digest(access_token),))

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
