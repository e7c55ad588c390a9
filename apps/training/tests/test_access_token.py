"""The sample node's secret access_token: it opens protected views for the query and is never kept.

A warehouse may protect a table behind a view that checks a session variable (row-level access). The session
gets only the token's SHA-256 (hex), bound as a parameter, in the variable mlab_access_token_sha256; the view
compares it with a constant. The token itself never enters the data source's session, and is never stored
with the run, sent to an engine's payload, logged or shown.
"""

from __future__ import annotations

import hashlib

import duckdb
import numpy as np
import pytest

from apps.templates.services import template_create
from apps.training.models import TrainingRun
from apps.training.run_secrets import run_secrets_get
from apps.training.services import datasource_create
from apps.training.tests.runs_support import run_queued_jobs

pytestmark = pytest.mark.django_db
TOKEN = "tok-Row-Level-7f3a"
TOKEN_SHA256 = hashlib.sha256(TOKEN.encode()).hexdigest()


@pytest.fixture
def protected_source(tmp_path):
    path = tmp_path / "protected.duckdb"
    rng = np.random.default_rng(7)
    amount = rng.gamma(2.0, 30.0, 400)
    returned = (rng.random(400) < 1 / (1 + np.exp(-(amount - 60) / 20))).astype(int)
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE orders_raw (order_id INTEGER, amount DOUBLE, category VARCHAR, returned INTEGER)")
    con.executemany(
        "INSERT INTO orders_raw VALUES (?, ?, ?, ?)",
        [(i, float(amount[i]), "abc"[i % 3], int(returned[i])) for i in range(400)],
    )
    con.execute(
        "CREATE VIEW orders AS SELECT * FROM orders_raw "
        f"WHERE getvariable('mlab_access_token_sha256') = '{TOKEN_SHA256}'"
    )
    # What a hostile or careless view can read of the session: the digest, never the token.
    con.execute("CREATE VIEW session_echo AS SELECT getvariable('mlab_access_token_sha256') AS seen")
    con.close()
    return datasource_create(name="protected", kind="duckdb", options={"path": str(path)})


@pytest.fixture
def orders_template(user):
    return template_create(
        slug="orders-returns", name="Order returns", task_type="binary", owner=user, published=True,
        nodes=[
            {"key": "sample", "type": "sample.sql", "overrides": {
                "table": "orders", "label": "returned", "features": ["amount"], "categorical_features": ["category"],
            }},
            {"key": "fill_missing", "type": "preprocess.fill_missing"},
            {"key": "one_hot", "type": "preprocess.one_hot"},
            {"key": "split", "type": "split"},
            {"key": "train", "type": "train.logistic_regression"},
            {"key": "evaluate", "type": "evaluate.binary"},
        ],
    )  # fmt: skip


def _preview(api, params):
    body = {"template": "orders-returns", "datasource": "protected", "params": params}
    return api.post("/api/v1/runs/preview/", body, format="json")


def test_preview_sees_the_protected_rows_only_with_the_token(api, protected_source, orders_template):
    without = _preview(api, {})
    assert without.status_code == 200 and without.json()["row_count"] == 0
    with_token = _preview(api, {"sample": {"access_token": TOKEN}})
    assert with_token.status_code == 200 and with_token.json()["row_count"] == 400
    assert TOKEN not in with_token.content.decode()
    assert with_token.json()["params"]["sample"]["access_token"] == "********"


def test_a_run_uses_the_token_once_and_keeps_it_nowhere(
    api, protected_source, orders_template, django_capture_on_commit_callbacks, caplog
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/runs/",
            {"template": "orders-returns", "datasource": "protected", "params": {"sample": {"access_token": TOKEN}}},
            format="json",
        )
    assert response.status_code == 201
    run_id = response.json()["id"]
    assert run_secrets_get(run_id) == {"sample": {"access_token": TOKEN}}  # waiting for the job only
    run_queued_jobs()
    run = TrainingRun.objects.get(pk=run_id)
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert run_secrets_get(run_id) == {}
    stored = " ".join(
        str(v)
        for v in (
            run.params,
            run.payload,
            run.sql,
            run.report,
            run.error,
            list(run.events.values_list("message", flat=True)),
        )
    )
    assert TOKEN not in stored and TOKEN not in caplog.text
    assert TOKEN not in api.get(f"/api/v1/runs/{run_id}/").content.decode()

    with django_capture_on_commit_callbacks(execute=True):  # a relaunch does not have the token
        retry = api.post(f"/api/v1/runs/{run_id}/retry/")
    run_queued_jobs()
    relaunched = TrainingRun.objects.get(pk=retry.json()["id"])
    assert relaunched.status == TrainingRun.Status.FAILED and "rows" in relaunched.error


def test_the_session_holds_only_the_digest_of_the_token(protected_source):
    """A view that echoes the session variable shows the token's SHA-256, and the old plain variable is gone."""
    from apps.training.datasources import backend_for

    engine = backend_for(protected_source)
    with engine.connect() as con:
        engine._session(con, TOKEN)
        seen = con.execute("SELECT seen, getvariable('mlab_access_token') FROM session_echo").fetchone()
    assert seen == (TOKEN_SHA256, None)
