"""The standing API check: schemathesis against a real Mlab server. Run by ``make schemathesis`` (and so by
.ci/run, on MariaDB + Redis); not part of ``make test`` (this file's name is not ``test_*.py``).

The demo (``mlab_demo``, a small warehouse) is set up on the test database, the ASGI app is served by uvicorn as
``make run`` serves it (DEBUG off, as deployed: DEBUG's technical pages are HTML by design), and schemathesis
generates requests from /api/schema/ with the demo user's token: its examples, boundary values of every
parameter, random requests and stateful sequences that follow the links between operations.

Checks: no 5xx (``not_a_server_error``), bodies, content types and headers as the schema documents them
(``response_schema_conformance``, ``content_type_conformance``, ``response_headers_conformance``), and every
operation refusing a request without credentials (``ignored_auth``). Not checked: that each status code is
listed per operation (the 400/401/403/404 every route may answer are the API's conventions, stated once in
README, not repeated per operation), and that the server refuses exactly what the request schemas allow (run
parameters are a free-form object in the schema; templates validate them, and publish their own JSON Schema).

``MLAB_SCHEMATHESIS_EXAMPLES`` (default 50) bounds the examples per operation and phase; the whole check takes
about a minute and a half on the development machine (150 examples: a little over two minutes). The seed is
printed: ``schemathesis run … --seed N`` replays a run.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.demo.setup import demo_user_sync
from tests.live import Uvicorn

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CONFIG = Path(__file__).with_name("schemathesis.toml")
CHECKS = (
    "not_a_server_error,response_schema_conformance,content_type_conformance,response_headers_conformance,ignored_auth"
)


@pytest.mark.timeout(900)  # the suite's 300 s is for one test; this one is a whole run of generated requests
def test_the_api_answers_generated_requests_without_5xx_and_as_documented(tmp_path):
    call_command("mlab_demo", "--impressions", "20000", stdout=io.StringIO())
    token = demo_user_sync().token  # a fresh API token of the demo user (tokens are stored as digests)
    server = Uvicorn(tmp_path / "uvicorn.log", DJANGO_DEBUG="false")
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--no-color",
        "--config-file",
        str(CONFIG),
        "run",
        f"{server.base}/api/schema/",
        "--header",
        f"Authorization: Token {token}",
        "--checks",
        CHECKS,
        "--max-examples",
        os.environ.get("MLAB_SCHEMATHESIS_EXAMPLES", "50"),
        "--request-timeout",
        "30",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    try:
        # In the test's directory: schemathesis keeps a cache in its working directory.
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    finally:
        server.stop()
    print(result.stdout[-6000:])  # the summary and the seed, shown with -s and on failure
    assert result.returncode == 0, (
        f"{result.stdout[-30000:]}\n{result.stderr[-3000:]}\nserver log:\n{server.log()[-5000:]}"
    )
