"""The SQL builder: every operator in every dialect, the sqlglot round trip, and the allow-list rules."""

from __future__ import annotations

import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

from apps.templates.builtins import DEMO_SAMPLE
from apps.templates.nodes import NodeValidationError, Task, ValidationContext, registry
from apps.training.sql import (
    SchemaAllowList,
    build_sample_query,
    check_sample_columns,
    count_query,
    escape_like,
    hash_threshold,
    limited,
    parse,
    render,
)

DIALECTS = ["duckdb", "mysql", "hive", "spark"]
COLUMNS = {
    "impressions": {
        "ds": "DATE",
        "user_id": "INTEGER",
        "item_id": "INTEGER",
        "position": "INTEGER",
        "hour": "INTEGER",
        "clicked": "INTEGER",
        "shown_at": "TIMESTAMP",
    },
    "users": {
        "user_id": "INTEGER",
        "age": "INTEGER",
        "gender": "VARCHAR",
        "city_tier": "VARCHAR",
        "is_vip": "BOOLEAN",
        "signup_days": "INTEGER",
    },
    "items": {
        "item_id": "INTEGER",
        "category": "VARCHAR",
        "price": "DECIMAL(10,2)",
        "seller_rating": "DOUBLE",
        "discount": "DOUBLE",
    },
}
OPERATOR_CASES = [
    ("=", "gender", "F"),
    ("!=", "city_tier", "tier4"),
    ("<", "age", 30),
    ("<=", "price", 99.5),
    (">", "signup_days", 10),
    (">=", "seller_rating", 4.5),
    ("in", "category", ["books", "toys"]),
    ("not in", "age", [18, 19]),
    ("between", "ds", ["2026-10-02", "2026-10-05"]),
    ("between", "shown_at", ["2026-10-02", "2026-10-05 12:00:00"]),
    ("like", "city_tier", "50%_off\\now"),
    ("is null", "age", None),
    ("is not null", "seller_rating", None),
    ("=", "is_vip", True),
]


def sample(**changes):
    values = {
        "joins": [],
        "features": [],
        "categorical_features": [],
        "partition_column": None,
        "filters": [],
        "date_from": None,
        "date_to": None,
        "negative_ratio": 1.0,
        "sample_key": [],
        "limit": None,
        "positive_value": "1",
        **DEMO_SAMPLE,
    }
    values.update(changes)
    return values


_TEXT_TYPES = {exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR, exp.DataType.Type.CHAR}
_TIMESTAMP_TYPES = {
    exp.DataType.Type.TIMESTAMP,
    exp.DataType.Type.TIMESTAMPNTZ,
    exp.DataType.Type.TIMESTAMPTZ,
    exp.DataType.Type.DATETIME,
}


def canonical(tree: exp.Expr) -> exp.Expr:
    """The tree up to how each dialect spells the same construct: Hive and Spark write CAST that sqlglot reads
    back as TRY_CAST (their CAST yields NULL on failure), string types are TEXT/CHAR/STRING, a timestamp is
    TIMESTAMP/DATETIME (read back with or without a time zone by dialect), DuckDB writes
    CONCAT as ||, and Hive's LIKE has no ESCAPE clause (the backslash is its escape character anyway)."""

    def untry(node):
        return exp.Cast(this=node.this, to=node.args["to"]) if isinstance(node, exp.TryCast) else node

    def structure(node):
        if isinstance(node, exp.DPipe):
            parts, left = [node.expression], node.this
            while isinstance(left, exp.DPipe):
                parts.insert(0, left.expression)
                left = left.this
            return exp.Concat(expressions=[left, *parts], safe=True)
        if isinstance(node, exp.Concat):
            return exp.Concat(expressions=node.expressions, safe=True)
        if isinstance(node, exp.Escape):
            return node.this
        return node

    def types(node):
        if isinstance(node, exp.DataType) and node.this in _TEXT_TYPES:
            return exp.DataType.build("TEXT")
        if isinstance(node, exp.DataType) and node.this in _TIMESTAMP_TYPES:
            return exp.DataType.build("TIMESTAMP")
        return node

    # transform does not descend into a node it replaced, so each kind of rewrite gets its own pass
    return tree.copy().transform(untry).transform(structure).transform(types)


def assert_round_trip(tree: exp.Expr, dialect: str) -> str:
    sql = render(tree, dialect)
    parsed = parse(sql, dialect)
    assert canonical(parsed) == canonical(tree), sql
    assert render(parsed, dialect) == sql  # a fixpoint: rendering what was parsed gives the same text
    if dialect == "duckdb":
        assert parsed.sql("duckdb") == tree.sql("duckdb")
    return sql


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(("op", "column", "value"), OPERATOR_CASES, ids=lambda v: str(v))
def test_every_operator_renders_and_parses_back_to_the_same_tree(dialect, op, column, value):
    condition = {"column": column, "op": op, "value": value}
    query = build_sample_query(sample(filters=[condition]), columns=COLUMNS, task="binary")
    sql = assert_round_trip(query.expression, dialect)
    quote = '"' if dialect == "duckdb" else "`"
    assert f"{quote}{column}{quote}" in sql
    where = query.expression.args["where"].sql("duckdb")
    expected = {
        "=": " = ",
        "!=": " <> ",
        "<": " < ",
        "<=": " <= ",
        ">": " > ",
        ">=": " >= ",
        "in": " IN (",
        "not in": "NOT ",
        "between": " BETWEEN ",
        "like": " LIKE ",
        "is null": " IS NULL",
        "is not null": "NOT ",
    }[op]
    assert expected in where


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_demo_sample_with_window_down_sampling_and_limit_round_trips(dialect):
    params = sample(date_from="2026-10-03", date_to="2026-10-09", negative_ratio=0.25, limit=5000)
    query = build_sample_query(params, columns=COLUMNS, task="binary")
    sql = assert_round_trip(query.expression, dialect)
    assert "MD5" in sql.upper() and "RAND" not in sql.upper()
    assert "'40000000'" in sql  # 0.25 × 16⁸ as 8 hex digits
    assert "LEFT JOIN" in sql and "LIMIT 5000" in sql
    assert query.columns.names == [*DEMO_SAMPLE["features"], *DEMO_SAMPLE["categorical_features"], "clicked"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_regression_label_is_the_numeric_value(dialect):
    params = sample(
        table="items",
        joins=[],
        label="price",
        features=["seller_rating", "discount"],
        categorical_features=["category"],
        partition_column=None,
        sample_key=["item_id"],
    )
    query = build_sample_query(params, columns=COLUMNS, task="regression")
    sql = assert_round_trip(query.expression, dialect)
    assert "CASE" not in sql and "AS DOUBLE) AS" in sql


def test_binary_label_compares_with_a_literal_of_the_label_type():
    tree = build_sample_query(sample(), columns=COLUMNS, task="binary").expression
    label = tree.expressions[-1]
    assert label.alias == "clicked"
    assert label.sql("duckdb") == 'CASE WHEN "impressions"."clicked" = 1 THEN 1 ELSE 0 END AS "clicked"'
    with_text_label = {**COLUMNS, "impressions": {**COLUMNS["impressions"], "clicked": "VARCHAR"}}
    tree = build_sample_query(sample(positive_value="yes"), columns=with_text_label, task="binary").expression
    assert "= 'yes' THEN 1" in tree.expressions[-1].sql("duckdb")


def test_like_is_contains_with_wildcards_escaped():
    assert escape_like("50%_off\\") == "50\\%\\_off\\\\"
    query = build_sample_query(
        sample(filters=[{"column": "category", "op": "like", "value": "a%b_c"}]), columns=COLUMNS, task="binary"
    )
    assert "LIKE '%a\\%b\\_c%' ESCAPE '\\'" in render(query.expression, "duckdb")
    assert "LIKE '%a\\\\%b\\\\_c%' ESCAPE '\\\\'" in render(query.expression, "mysql")


def test_date_window_per_partition_column_type():
    params = sample(date_from="2026-10-03", date_to="2026-10-09")
    where = build_sample_query(params, columns=COLUMNS, task="binary").expression.args["where"].sql("duckdb")
    assert "\"ds\" >= CAST('2026-10-03' AS DATE)" in where and "\"ds\" < CAST('2026-10-10' AS DATE)" in where
    as_text = {**COLUMNS, "impressions": {**COLUMNS["impressions"], "ds": "VARCHAR"}}
    where = build_sample_query(params, columns=as_text, task="binary").expression.args["where"].sql("duckdb")
    assert "\"ds\" >= '2026-10-03'" in where and "\"ds\" <= '2026-10-09'" in where
    as_number = {**COLUMNS, "impressions": {**COLUMNS["impressions"], "ds": "BIGINT"}}
    where = build_sample_query(params, columns=as_number, task="binary").expression.args["where"].sql("duckdb")
    assert '"ds" >= 20261003' in where and '"ds" <= 20261009' in where


def test_hash_threshold_is_the_ratio_of_the_hex_range():
    assert hash_threshold(0.5) == "80000000"
    assert hash_threshold(0.1) == "19999999"
    assert hash_threshold(1.0) == "ffffffff"


def test_preview_and_count_wrap_the_same_query():
    query = build_sample_query(sample(limit=7), columns=COLUMNS, task="binary").expression
    assert "LIMIT 5" in render(limited(query, 5), "duckdb")
    assert "LIMIT 7" in render(limited(query, 50), "duckdb")
    assert "LIMIT 7" in render(query, "duckdb")  # the original is untouched
    counted = render(count_query(query), "mysql", pretty=False)
    assert counted.startswith("SELECT COUNT(*) FROM (SELECT") and counted.endswith(") AS `sample`")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"table": "clicks"}, "table", "No such table"),
        ({"joins": [{"table": "users", "on": "item_id"}]}, "joins", "not a column of both"),
        ({"features": ["age", "nope"]}, "features", "nope"),
        ({"features": ["age", "gender"]}, "features", "Not numeric: gender"),
        ({"positive_value": "yes"}, "positive_value", "not a number"),
        ({"filters": [{"column": "age", "op": "=", "value": "30"}]}, "filters", "is not a number"),
        ({"filters": [{"column": "age", "op": "in", "value": [1, "x"]}]}, "filters", "is not a number"),
        ({"filters": [{"column": "gender", "op": "=", "value": 1}]}, "filters", "holds text"),
        ({"filters": [{"column": "age", "op": "like", "value": "3"}]}, "filters", "'like' applies to text"),
        ({"filters": [{"column": "ds", "op": ">", "value": "yesterday"}]}, "filters", "YYYY-MM-DD"),
        ({"filters": [{"column": "is_vip", "op": "=", "value": "yes"}]}, "filters", "not a boolean"),
        ({"negative_ratio": 0.5, "sample_key": [], "joins": [], "partition_column": None}, "sample_key", "key"),
    ],
)
def test_bad_choices_are_field_errors(changes, field, message):
    params = sample(**changes)
    if changes.get("joins") == []:  # only the fact table: features must come from it
        params.update(features=["position", "hour"], categorical_features=[])
    with pytest.raises(NodeValidationError) as raised:
        check_sample_columns(params, COLUMNS, "binary")
    assert field in raised.value.errors, raised.value.errors
    assert message in " ".join(raised.value.errors[field])


def test_regression_needs_a_numeric_label():
    params = sample(
        table="items",
        joins=[],
        label="category",
        features=["price"],
        categorical_features=[],
        partition_column=None,
        sample_key=[],
    )
    with pytest.raises(NodeValidationError) as raised:
        check_sample_columns(params, COLUMNS, "regression")
    assert "numeric" in raised.value.errors["label"][0]


SAFE_TEXT = st.text(max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    value=SAFE_TEXT,
    op=st.sampled_from(["=", "!=", "<", ">=", "like", "in", "not in"]),
    dialect=st.sampled_from(DIALECTS),
)
def test_any_text_value_stays_one_literal_in_every_dialect(value, op, dialect):
    """Whatever the text, the rendered SQL parses back to the same tree, with the value as a single literal."""
    filter_value = [value, value + "x"] if op in ("in", "not in") else value
    query = build_sample_query(
        sample(filters=[{"column": "category", "op": op, "value": filter_value}]), columns=COLUMNS, task="binary"
    )
    sql = render(query.expression, dialect, pretty=False)
    parsed = sqlglot.parse_one(sql, read={"hive": "hive"}.get(dialect, dialect))
    assert canonical(parsed) == canonical(query.expression)
    strings = {lit.this for lit in parsed.find_all(exp.Literal) if lit.is_string}
    expected = f"%{escape_like(value)}%" if op == "like" else value
    assert expected in strings
    assert len(list(parsed.find_all(exp.Select))) == 1  # nothing smuggled in as a second query


def test_the_sample_node_checks_names_against_the_schema_allowlist():
    sample = registry.get("sample.sql")
    columns = {
        "imp": {"user_id": "BIGINT", "clicked": "INTEGER", "ds": "DATE"},
        "users": {"user_id": "BIGINT", "age": "INTEGER"},
    }
    context = ValidationContext(task=Task.BINARY, allowlist=SchemaAllowList(columns))
    good = {
        "table": "imp",
        "joins": [{"table": "users", "on": "user_id"}],
        "label": "clicked",
        "features": ["age"],
        "partition_column": "ds",
    }
    cleaned, errors = sample.resolve(good, overrides={}, locked=frozenset(), context=context)
    assert errors == {}
    assert context.features == ["age"] and context.label == "clicked"
    _, errors = sample.resolve(
        {**good, "features": ["age", "income"]},
        overrides={},
        locked=frozenset(),
        context=ValidationContext(task=Task.BINARY, allowlist=SchemaAllowList(columns)),
    )
    assert "income" in errors["features"][0]
    _, errors = sample.resolve(
        {**good, "table": "orders"},
        overrides={},
        locked=frozenset(),
        context=ValidationContext(task=Task.BINARY, allowlist=SchemaAllowList(columns)),
    )
    assert "No such table" in errors["table"][0]
    _, errors = sample.resolve(
        {**good, "joins": [{"table": "users", "on": "age"}]},
        overrides={},
        locked=frozenset(),
        context=ValidationContext(task=Task.BINARY, allowlist=SchemaAllowList(columns)),
    )
    assert "not a column of both" in errors["joins"][0]
