"""Execution on DuckDB and MariaDB: same rows, typed arrays, deterministic down-sampling, clear failures."""

from __future__ import annotations

import socket
import sys

import numpy as np
import pytest
from django.core.exceptions import ValidationError

from apps.templates.builtins import DEMO_SAMPLE
from apps.templates.nodes.base import DATE_MIN
from apps.training.datasources import (
    BackendNotAvailable,
    DataSourceUnavailable,
    QueryTimeout,
    backend_for,
    load_sample,
    save_sample,
)
from apps.training.datasources.duckdb_backend import DuckDBBackend
from apps.training.datasources.mysql_backend import MySQLBackend
from apps.training.launch import prepare_launch
from apps.training.models import DataSource
from apps.training.selectors import sample_fetch, sample_preview

pytestmark = pytest.mark.django_db


def prepared(template, source, **sample):
    return prepare_launch(template=template, params={"sample": sample}, datasource=source, engine="local")


def fetch(template, source, **sample):
    return sample_fetch(prepared=prepared(template, source, **sample))


def test_duckdb_sample_has_typed_columns_and_no_null_labels(builtin_templates, duck_source):
    data = fetch(builtin_templates["binary-lr"], duck_source)
    assert len(data) > 10_000
    for name in DEMO_SAMPLE["features"]:
        assert data.numeric[name].dtype == np.float64 and len(data.numeric[name]) == len(data)
    assert np.isnan(data.numeric["age"]).any() and np.isnan(data.numeric["seller_rating"]).any()
    gender = data.categorical["gender"]
    # Dictionary-encoded: int32 codes into the distinct strings, -1 for NULL; no object per row.
    assert gender.codes.dtype == np.int32 and len(gender.codes) == len(data)
    assert sorted(gender.values.tolist()) == ["F", "M"] and (gender.codes == -1).any()
    assert set(gender.to_objects().tolist()) == {"F", "M", None}
    assert set(np.unique(data.label)) == {0.0, 1.0}
    assert 0.05 < data.label.mean() < 0.25


def test_mariadb_and_duckdb_agree_on_rows_and_label_rates(builtin_templates, duck_source, mysql_source):
    template = builtin_templates["binary-lr"]
    params = {
        "date_from": "2026-10-05",
        "date_to": "2026-10-20",
        "negative_ratio": 0.4,
        "filters": [{"column": "city_tier", "op": "in", "value": ["tier1", "tier2", "tier3"]}],
    }
    duck, maria = fetch(template, duck_source, **params), fetch(template, mysql_source, **params)
    assert len(duck) == len(maria) > 1000
    assert duck.label.mean() == pytest.approx(maria.label.mean(), abs=1e-12)
    for name in DEMO_SAMPLE["features"]:
        assert np.nansum(duck.numeric[name]) == pytest.approx(np.nansum(maria.numeric[name]), rel=1e-9)
        assert np.isnan(duck.numeric[name]).sum() == np.isnan(maria.numeric[name]).sum()
    for name in DEMO_SAMPLE["categorical_features"]:
        duck_texts, maria_texts = duck.categorical[name].to_objects(), maria.categorical[name].to_objects()
        assert sorted(map(str, duck_texts)) == sorted(map(str, maria_texts))
    regression = builtin_templates["regression-linear"]
    duck_items, maria_items = fetch(regression, duck_source), fetch(regression, mysql_source)
    assert len(duck_items) == len(maria_items) and np.sum(duck_items.label) == pytest.approx(np.sum(maria_items.label))


def test_the_widest_date_window_runs_on_duckdb_and_mariadb(builtin_templates, duck_source, mysql_source):
    """The date parameters' declared range is what the back ends really take: the window's last day + 1
    (9999-12-31) is a date literal in both, and the widest window keeps every row."""
    template = builtin_templates["binary-lr"]
    widest = {"date_from": DATE_MIN, "date_to": "9999-12-30"}
    for source in (duck_source, mysql_source):
        assert "'9999-12-31'" in prepared(template, source, **widest).sql
        assert len(fetch(template, source, **widest)) == len(fetch(template, source)) > 1000


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.7])
def test_down_sampling_is_deterministic_and_keeps_its_ratio_of_negatives(builtin_templates, duck_source, ratio):
    template = builtin_templates["binary-lr"]
    full = fetch(template, duck_source)
    first, again = (
        fetch(template, duck_source, negative_ratio=ratio),
        fetch(template, duck_source, negative_ratio=ratio),
    )
    assert np.array_equal(first.label, again.label)
    assert np.array_equal(first.numeric["age"], again.numeric["age"], equal_nan=True)
    positives, negatives = int(full.label.sum()), int((full.label == 0).sum())
    assert int(first.label.sum()) == positives  # every positive is kept
    kept = int((first.label == 0).sum()) / negatives
    # binomial sd at ~17,000 negatives is under 0.004; 0.02 is five of them
    assert kept == pytest.approx(ratio, abs=0.02)


def test_down_sampling_picks_the_same_rows_on_mariadb(builtin_templates, duck_source, mysql_source):
    template = builtin_templates["binary-gbdt"]
    duck = fetch(template, duck_source, negative_ratio=0.2)
    maria = fetch(template, mysql_source, negative_ratio=0.2)
    assert len(duck) == len(maria)
    key = lambda d: sorted(zip(d.numeric["hour"], d.numeric["position"], d.numeric["price"], d.label, strict=True))  # noqa: E731
    assert key(duck) == key(maria)


def test_preview_returns_first_rows_and_the_row_count(builtin_templates, duck_source):
    launch = prepared(
        builtin_templates["binary-lr"], duck_source, preview_rows=7, date_from="2026-10-03", date_to="2026-10-03"
    )
    preview = sample_preview(prepared=launch)
    assert len(preview.rows) == 7 and len(preview.rows[0]) == len(preview.columns) == 12
    engine = DuckDBBackend(name="x", options={"path": duck_source.options["path"]})
    with engine.connect() as con:
        expected = con.execute("SELECT COUNT(*) FROM impressions WHERE ds = DATE '2026-10-03'").fetchone()[0]
    assert preview.row_count == expected


def test_saved_sample_loads_without_pickle_and_equals_the_original(builtin_templates, duck_source, tmp_path):
    data = fetch(builtin_templates["binary-lr"], duck_source, limit=3000)
    path = tmp_path / "sample.npz"
    save_sample(path, data)
    with np.load(path, allow_pickle=False) as raw:  # every array is plain data
        assert all(raw[name].dtype != object for name in raw.files)
    loaded = load_sample(path)
    assert loaded.columns == data.columns and len(loaded) == 3000
    assert np.array_equal(loaded.label, data.label)
    for name in data.numeric:
        assert np.array_equal(loaded.numeric[name], data.numeric[name], equal_nan=True)
    for name in data.categorical:
        assert loaded.categorical[name].to_objects().tolist() == data.categorical[name].to_objects().tolist()


def test_payload_names_the_sample_columns_for_the_trainer(builtin_templates, duck_source):
    launch = prepared(builtin_templates["binary-lr"], duck_source)
    described = launch.payload["sample"]
    assert described == {
        "node": "sample",
        "dialect": "duckdb",
        "numeric": DEMO_SAMPLE["features"],
        "categorical": DEMO_SAMPLE["categorical_features"],
        "label": "clicked",
        "label_kind": "binary",
        "positive_value": "1",
    }
    assert launch.sql.startswith("SELECT") and '"impressions"' in launch.sql


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_sources_are_clear_errors_naming_the_datasource(builtin_templates, tmp_path, mysqlclient):
    missing = DataSource.objects.create(name="gone", kind="duckdb", options={"path": str(tmp_path / "nope.duckdb")})
    down = DataSource.objects.create(
        name="down", kind="mysql", options={"host": "127.0.0.1", "port": _closed_port(), "database": "x"}
    )
    for source, words in ((missing, "does not exist"), (down, "cannot connect")):
        with pytest.raises(ValidationError) as raised:
            prepared(builtin_templates["binary-lr"], source)
        assert words in raised.value.message_dict["datasource"][0]
    with pytest.raises(DataSourceUnavailable):
        backend_for(down).introspect()


def test_password_comes_from_the_environment_and_a_missing_variable_says_which(monkeypatch, mysqlclient):
    engine = MySQLBackend(name="m", options={"database": "x"}, password_env="MLAB_DS_TEST_NO_SUCH_VAR")
    with pytest.raises(DataSourceUnavailable, match="MLAB_DS_TEST_NO_SUCH_VAR"):
        engine.introspect()
    monkeypatch.setenv("MLAB_DS_TEST_NO_SUCH_VAR", "s3cret-value")
    engine = MySQLBackend(
        name="m", options={"database": "x", "port": _closed_port()}, password_env="MLAB_DS_TEST_NO_SUCH_VAR"
    )
    with pytest.raises(DataSourceUnavailable) as raised:
        engine.introspect()
    assert "s3cret-value" not in str(raised.value)


def test_a_mysql_source_without_mysqlclient_says_what_to_install(builtin_templates, monkeypatch):
    monkeypatch.setitem(sys.modules, "MySQLdb", None)  # what a checkout without mysqlclient sees: ImportError
    down = DataSource.objects.create(name="down", kind="mysql", options={"host": "127.0.0.1", "database": "x"})
    with pytest.raises(DataSourceUnavailable, match="requirements-mysql.txt"):
        backend_for(down).introspect()
    with pytest.raises(ValidationError) as raised:
        prepared(builtin_templates["binary-lr"], down)
    assert "mysqlclient" in raised.value.message_dict["datasource"][0]


def test_duckdb_statement_timeout_stops_the_query(warehouse_path):
    engine = DuckDBBackend(name="demo", options={"path": str(warehouse_path)})
    slow = "SELECT COUNT(*) FROM range(100000) a, range(100000) b WHERE (a.range * b.range) % 7 = 3"
    with pytest.raises(QueryTimeout, match="stopped after 1 s"):
        engine.count(slow, timeout=1)


def test_mariadb_statement_timeout_stops_the_query(mysql_warehouse):
    engine = MySQLBackend(name="demo-mysql", options=mysql_warehouse)
    with pytest.raises(QueryTimeout):
        engine.count("SELECT COUNT(*) FROM (SELECT SLEEP(5) AS s) AS t", timeout=1)


def test_maxcompute_generates_hive_sql_but_does_not_execute(builtin_templates, hive_source):
    launch = prepared(builtin_templates["binary-lr"], hive_source)
    assert launch.dialect == "hive" and "`impressions`" in launch.sql
    with pytest.raises(BackendNotAvailable, match="no credentials"):
        sample_fetch(prepared=launch)


def test_ssl_mode_required_is_checked_once_connected(mysql_warehouse):
    """MariaDB's client library goes on without TLS under ssl_mode REQUIRED when the server offers none: the
    back end checks the session and refuses it (or, on a server with TLS, reads over TLS)."""
    import MySQLdb

    plain = {k: v for k, v in mysql_warehouse.items() if k in ("host", "port", "user")}
    con = MySQLdb.connect(**plain)
    cursor = con.cursor()
    cursor.execute("SHOW VARIABLES LIKE 'have_ssl'")
    server_has_tls = cursor.fetchone()[1] == "YES"
    con.close()
    engine = MySQLBackend(name="tls", options={**mysql_warehouse, "ssl_mode": "required"})
    if server_has_tls:
        assert "impressions" in engine.introspect()
    else:
        with pytest.raises(
            DataSourceUnavailable, match="ssl_mode is required, but the MySQL server .* did not use TLS"
        ):
            engine.introspect()
