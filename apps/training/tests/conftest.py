"""Fixtures of the training app: data sources over the demo warehouse (DuckDB), and the same rows on MariaDB."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit

import pytest

from apps.demo.warehouse import load_demo_into_mysql
from apps.training.services import datasource_create

# Where the MariaDB copy goes; the test database server by default.
MYSQL_URL = os.environ.get("MLAB_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")


@pytest.fixture(scope="session")
def mysqlclient():
    """mysqlclient itself, for tests of the MySQL engine that need no server; skips (saying why) without it.

    The embedded default does not install mysqlclient (it compiles against libmariadb-dev); such a checkout
    sees these tests skipped, and test_execution.py checks the error a user then gets instead.
    """
    return pytest.importorskip("MySQLdb", reason="mysqlclient is not installed (pip install -r requirements-mysql.txt)")


def _mysql_server() -> dict:
    parts = urlsplit(MYSQL_URL)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": parts.username or "root",
        "password": parts.password,
    }


@pytest.fixture(scope="session")
def mysql_warehouse(warehouse_path):
    """The warehouse's rows in a MariaDB database of this test session's own, dropped afterwards.

    Yields the DataSource options. Skips (saying why) only when mysqlclient is missing or the server is down.
    """
    try:
        import MySQLdb
    except ImportError:
        pytest.skip("mysqlclient is not installed (pip install -r requirements-mysql.txt)")
    server = _mysql_server()
    connect = {k: v for k, v in server.items() if v is not None}
    try:
        MySQLdb.connect(connect_timeout=3, **connect).close()
    except MySQLdb.OperationalError as exc:
        pytest.skip(f"MariaDB/MySQL at {server['host']}:{server['port']} is unreachable: {exc}")
    suffix = (os.environ.get("MLAB_TEST_DATABASE_NAME") or "") + "_" + uuid.uuid4().hex[:8]
    database = f"mlab_test_wh_{suffix.strip('_')}"[:64]
    password = server.pop("password")
    load_demo_into_mysql(warehouse_path, database=database, password=password, **server)
    yield {**server, "database": database}
    con = MySQLdb.connect(**connect)
    try:
        con.cursor().execute(f"DROP DATABASE IF EXISTS `{database}`")
    finally:
        con.close()


@pytest.fixture
def mysql_source(db, mysql_warehouse):
    return datasource_create(name="demo-mysql", kind="mysql", options=mysql_warehouse)


@pytest.fixture
def hive_source(db):
    tables = {
        "impressions": {
            "ds": "string",
            "user_id": "bigint",
            "item_id": "bigint",
            "position": "int",
            "hour": "int",
            "clicked": "int",
        },
        "users": {
            "user_id": "bigint",
            "age": "int",
            "gender": "string",
            "city_tier": "string",
            "is_vip": "boolean",
            "signup_days": "int",
        },
        "items": {
            "item_id": "bigint",
            "category": "string",
            "price": "double",
            "seller_rating": "double",
            "discount": "double",
        },
    }
    return datasource_create(name="odps", kind="maxcompute", options={"project": "seller", "tables": tables})
