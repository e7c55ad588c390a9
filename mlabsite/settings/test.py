"""Test settings: the base settings, with each pytest-xdist worker on a Redis database of its own."""

import getpass
import os
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from .base import *  # noqa: F403
from .base import CACHES, DATABASES, MLAB_DUCKDB_ROOTS, REDIS_EMBEDDED, REDIS_URL, RQ_QUEUES, VAR_DIR

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _redis_url_for_worker(url: str) -> str:
    """Move the tests off the database `make run` uses, and give every xdist worker its own database."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    offset = int(worker.removeprefix("gw") or 0)
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = parse_qs(parts.query)
        db = int(query.get("db", ["0"])[0])
        query["db"] = [str(db + 1 + offset if REDIS_EMBEDDED else db + offset)]
        return f"unix://{parts.path}?{urlencode(query, doseq=True)}"
    db = int(parts.path.lstrip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{db + offset}"))


REDIS_URL = _redis_url_for_worker(REDIS_URL)
# Lets two checkouts run their suites against one MariaDB at the same time (CI needs neither).
if os.environ.get("MLAB_TEST_DATABASE_NAME"):
    DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ["MLAB_TEST_DATABASE_NAME"]
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: tests that start real server processes share the test database with them. One file
    # per test run (Django deletes it at the end), so that two runs in one checkout do not collide.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(VAR_DIR / f"test-{os.getpid()}.sqlite3")
CACHES["default"]["LOCATION"] = REDIS_URL
RQ_QUEUES["default"]["URL"] = REDIS_URL
# Tests build their own demo warehouse instead of touching the one `make run` serves.
MLAB_WAREHOUSE_PATH = Path(os.environ.get("MLAB_TEST_WAREHOUSE_PATH", str(VAR_DIR / "test" / "warehouse.duckdb")))


def _pytest_temp_root() -> Path:
    """Where pytest's tmp_path directories live: pytest-of-<user> under the temporary directory, as pytest's
    tmpdir plugin computes it (PYTEST_DEBUG_TEMPROOT overrides the temporary directory)."""
    try:
        user = getpass.getuser()
    except (ImportError, KeyError, OSError):
        user = "unknown"
    return Path(os.environ.get("PYTEST_DEBUG_TEMPROOT") or tempfile.gettempdir()).resolve() / f"pytest-of-{user}"


# Tests build warehouses under pytest's temporary directories; production allows var/ only (base.py).
MLAB_DUCKDB_ROOTS = [*MLAB_DUCKDB_ROOTS, VAR_DIR, _pytest_temp_root()]
