"""The data source API and the run preview: shapes, field errors, no secrets, nothing created."""

from __future__ import annotations

import json

import pytest

from apps.training.datasources import backend_for
from apps.training.models import DataSource, TrainingRun

pytestmark = pytest.mark.django_db

SECRET = "pw-s3cret-never-shown"


@pytest.fixture
def guarded_source(db, mysql_warehouse, monkeypatch):
    """A MariaDB source whose password sits in the environment; the server refuses it."""
    monkeypatch.setenv("MLAB_DS_TEST_PASSWORD", SECRET)
    return DataSource.objects.create(
        name="guarded", kind="mysql", options=dict(mysql_warehouse), password_env="MLAB_DS_TEST_PASSWORD"
    )


def preview_body(**changes):
    body = {"template": "binary-lr", "datasource": "demo", "engine": "local", "params": {}}
    body.update(changes)
    return body


def test_every_route_needs_a_token(anon_api, duck_source):
    assert anon_api.get("/api/v1/datasources/").status_code == 401
    assert anon_api.get("/api/v1/datasources/demo/tables/").status_code == 401
    assert anon_api.post("/api/v1/runs/preview/", preview_body(), format="json").status_code == 401


def test_datasource_list_shows_no_connection_details(api, duck_source, hive_source):
    response = api.get("/api/v1/datasources/")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["name"] for r in results] == ["demo", "odps"]
    assert results[0] == {
        "name": "demo",
        "kind": "duckdb",
        "description": "",
        "dialect": "duckdb",
        "executable": True,
    }
    assert results[1]["dialect"] == "hive" and results[1]["executable"] is False
    assert "path" not in response.content.decode()


def test_tables_match_introspection_and_refresh_rereads(api, user, duck_source):
    from django.contrib.auth.models import Permission

    user.user_permissions.add(Permission.objects.get(codename="change_datasource"))  # refresh connects now
    response = api.get("/api/v1/datasources/demo/tables/")
    assert response.status_code == 200
    tables = {t["name"]: {c["name"]: c["type"] for c in t["columns"]} for t in response.json()["tables"]}
    assert tables == backend_for(duck_source).introspect()
    users = next(t for t in response.json()["tables"] if t["name"] == "users")
    assert {"name": "is_vip", "type": "BOOLEAN", "kind": "boolean"} in users["columns"]
    assert api.get("/api/v1/datasources/demo/tables/?refresh=1").json() == response.json()
    assert api.get("/api/v1/datasources/nope/tables/").status_code == 404


def test_tables_of_an_unreachable_source_are_a_400_naming_the_datasource(api, tmp_path):
    DataSource.objects.create(name="gone", kind="duckdb", options={"path": str(tmp_path / "x.duckdb")})
    response = api.get("/api/v1/datasources/gone/tables/")
    assert response.status_code == 400
    assert "does not exist" in response.json()["datasource"][0]


def test_preview_returns_sql_payload_columns_rows_and_count_and_creates_nothing(api, duck_source, builtin_templates):
    body = preview_body(
        params={
            "sample": {"date_from": "2026-10-02", "date_to": "2026-10-02", "preview_rows": 5, "access_token": SECRET}
        }
    )
    response = api.post("/api/v1/runs/preview/", body, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["sql"].startswith("SELECT") and "'2026-10-03'" in data["sql"]
    assert data["payload"]["sample"]["label"] == "clicked"
    assert [c["name"] for c in data["columns"]][-1] == "clicked"
    assert len(data["rows"]) == 5 and all(len(r) == len(data["columns"]) for r in data["rows"])
    with backend_for(duck_source).connect() as con:
        expected = con.execute("SELECT COUNT(*) FROM impressions WHERE ds = DATE '2026-10-02'").fetchone()[0]
    assert data["row_count"] == expected
    assert SECRET not in response.content.decode()
    assert data["params"]["sample"]["access_token"] == "********"
    assert "preview_rows" not in json.dumps(data["payload"])
    assert TrainingRun.objects.count() == 0


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"template": "nope"}, {"template": ["No such template."]}),
        ({"datasource": "nope"}, {"datasource": ["No such data source."]}),
        ({"engine": "spark"}, "engine"),
        ({"params": {"sample": {"features": ["age", "not_a_column"]}}}, ("sample", "features")),
        ({"params": {"sample": {"filters": [{"column": "age", "op": ">", "value": "thirty"}]}}}, ("sample", "filters")),
        ({"params": {"sample": {"date_from": "2026-10-09", "date_to": "2026-10-01"}}}, ("sample", "date_to")),
        ({"params": {"sample": {"label": "age"}}}, ("sample", "label")),
        ({"params": {"train": {"maxIter": 0}}}, ("train", "maxIter")),
        ({"params": "not an object"}, "params"),
    ],
)
def test_bad_preview_input_is_a_400_naming_the_field(api, duck_source, builtin_templates, changes, expected):
    response = api.post("/api/v1/runs/preview/", preview_body(**changes), format="json")
    assert response.status_code == 400, response.content
    errors = response.json()
    if isinstance(expected, dict):
        assert errors == expected
    elif isinstance(expected, str):
        assert expected in errors
    else:
        node, param = expected
        assert param in errors["params"][node], errors
    assert TrainingRun.objects.count() == 0


def test_preview_on_an_unreachable_source_is_a_400_naming_the_datasource(api, builtin_templates, db, mysqlclient):
    DataSource.objects.create(name="down", kind="mysql", options={"host": "127.0.0.1", "port": 1, "database": "x"})
    response = api.post("/api/v1/runs/preview/", preview_body(datasource="down"), format="json")
    assert response.status_code == 400
    assert "cannot connect" in response.json()["datasource"][0]


def test_preview_on_maxcompute_shows_the_hive_sql_and_says_why_there_are_no_rows(api, hive_source, builtin_templates):
    response = api.post("/api/v1/runs/preview/", preview_body(datasource="odps"), format="json")
    assert response.status_code == 200
    data = response.json()
    assert data["dialect"] == "hive" and "`impressions`" in data["sql"]
    assert data["rows"] is None and "no credentials" in data["notice"]


def test_preview_on_mariadb_matches_duckdb(api, duck_source, mysql_source, builtin_templates):
    params = {"sample": {"date_from": "2026-10-04", "date_to": "2026-10-06", "negative_ratio": 0.5}}
    duck = api.post("/api/v1/runs/preview/", preview_body(params=params), format="json").json()
    maria = api.post("/api/v1/runs/preview/", preview_body(params=params, datasource="demo-mysql"), format="json")
    assert maria.status_code == 200, maria.content
    assert maria.json()["row_count"] == duck["row_count"] > 0
    assert "`impressions`" in maria.json()["sql"]


def test_a_wrong_password_never_appears_in_the_error(api, guarded_source, builtin_templates):
    response = api.post("/api/v1/runs/preview/", preview_body(datasource="guarded"), format="json")
    assert response.status_code == 400
    assert SECRET not in response.content.decode() and "datasource" in response.json()
