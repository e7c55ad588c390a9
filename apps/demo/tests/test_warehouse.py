"""The demo warehouse: deterministic, idempotent, with NULLs, a learnable click and a learnable price."""

from __future__ import annotations

import hashlib

import duckdb
import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from apps.demo.warehouse import build_demo_warehouse
from apps.templates.builtins import DEMO_SAMPLE

pytestmark = pytest.mark.django_db


def digest(path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        h = hashlib.sha256()
        for table in ("users", "items", "impressions"):
            for row in con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall():
                h.update(repr(row).encode())
        return h.hexdigest()
    finally:
        con.close()


def test_same_seed_same_rows_and_a_rebuild_is_skipped(tmp_path):
    a = build_demo_warehouse(tmp_path / "a.duckdb", impressions=3000)
    b = build_demo_warehouse(tmp_path / "b.duckdb", impressions=3000)
    c = build_demo_warehouse(tmp_path / "c.duckdb", impressions=3000, seed=7)
    assert a.created and digest(a.path) == digest(b.path) != digest(c.path)
    again = build_demo_warehouse(tmp_path / "a.duckdb", impressions=99)
    assert not again.created and again.impressions == 3000
    assert not list(tmp_path.glob(".*tmp*"))  # no half-written file left behind


def test_tables_have_the_columns_the_templates_use_and_some_nulls(warehouse_path):
    con = duckdb.connect(str(warehouse_path), read_only=True)
    columns = {t: [r[0] for r in con.execute(f"DESCRIBE {t}").fetchall()] for t in ("users", "items", "impressions")}
    assert columns == {
        "users": ["user_id", "age", "gender", "city_tier", "is_vip", "signup_days"],
        "items": ["item_id", "category", "price", "seller_rating", "discount"],
        "impressions": ["ds", "user_id", "item_id", "position", "hour", "clicked"],
    }
    nulls = con.execute(
        "SELECT COUNT(*) - COUNT(age), COUNT(*) - COUNT(signup_days), COUNT(*) - COUNT(gender) FROM users"
    ).fetchone()
    assert all(n > 0 for n in nulls)
    unique = con.execute("SELECT COUNT(*) = COUNT(DISTINCT (ds, user_id, item_id, hour)) FROM impressions").fetchone()
    assert unique[0]
    con.close()


def _design(data, numeric, categorical):
    columns = [data.numeric[n] for n in numeric] + [data.categorical[c].to_objects(missing="~") for c in categorical]
    return np.column_stack(columns).astype(object)


def test_a_logistic_model_reaches_the_expected_auc(builtin_templates, duck_source):
    from apps.training.launch import prepare_launch
    from apps.training.selectors import sample_fetch

    launch = prepare_launch(template=builtin_templates["binary-lr"], params={}, datasource=duck_source, engine="local")
    data = sample_fetch(prepared=launch)
    numeric, categorical = DEMO_SAMPLE["features"], DEMO_SAMPLE["categorical_features"]
    X, y = _design(data, numeric, categorical), data.label
    n = len(y) * 3 // 4
    k = len(numeric)
    model = make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(), StandardScaler()), list(range(k))),
                ("cat", OneHotEncoder(handle_unknown="ignore"), list(range(k, k + len(categorical)))),
            ]
        ),
        LogisticRegression(max_iter=1000),
    ).fit(X[:n], y[:n])
    auc = roc_auc_score(y[n:], model.predict_proba(X[n:])[:, 1])
    assert 0.7 <= auc <= 0.85


def test_price_is_learnable_by_linear_regression(builtin_templates, duck_source):
    from apps.training.launch import prepare_launch
    from apps.training.selectors import sample_fetch

    launch = prepare_launch(
        template=builtin_templates["regression-linear"], params={}, datasource=duck_source, engine="local"
    )
    data = sample_fetch(prepared=launch)
    X, y = _design(data, ["seller_rating", "discount"], ["category"]), data.label
    n = len(y) * 3 // 4
    model = make_pipeline(
        ColumnTransformer([("num", SimpleImputer(), [0, 1]), ("cat", OneHotEncoder(handle_unknown="ignore"), [2])]),
        LinearRegression(),
    ).fit(X[:n], y[:n])
    assert 0.6 <= r2_score(y[n:], model.predict(X[n:])) <= 0.97
