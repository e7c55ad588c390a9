"""Tables' profiles: row counts, the partition column's date range and the integer columns with few values,
computed on the source with generated SQL (identifiers quoted, from the allow-list), cached like the schema,
and shown on the Launch page and the data source page."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.training.datasources import DuckDBBackend, backend_for
from apps.training.schema_cache import profile_cached
from apps.training.selectors import datasource_profile
from apps.training.services import datasource_schema_refresh
from apps.training.sql import render
from apps.training.sql.profile import distinct_count_query, partition_column_of, table_count_query

pytestmark = pytest.mark.django_db


def _expected(source) -> dict:
    with backend_for(source).connect() as con:
        rows, first, last = con.execute("SELECT COUNT(*), MIN(ds), MAX(ds) FROM impressions").fetchone()
        users = con.execute("SELECT COUNT(*) FROM users").fetchone()[0]
    return {"rows": rows, "first_day": first.isoformat(), "last_day": last.isoformat(), "users": users}


def test_profile_sql_quotes_every_identifier_and_builds_no_text():
    sql = render(table_count_query('we"ird', partition_column="d`s"), "mysql", pretty=False)
    assert sql == 'SELECT COUNT(*) AS `row_count`, MIN(`d``s`) AS `first_day`, MAX(`d``s`) AS `last_day` FROM `we"ird`'
    sql = render(distinct_count_query("t", ['a"b'], sample_rows=10), "duckdb", pretty=False)
    assert sql == 'SELECT COUNT(DISTINCT "a""b") AS "a""b" FROM (SELECT "a""b" FROM "t" LIMIT 10) AS "head"'
    assert partition_column_of({"id": "INTEGER", "ds": "DATE"}) == "ds"
    assert partition_column_of({"id": "INTEGER", "created": "TIMESTAMP"}) == "created"
    assert partition_column_of({"id": "INTEGER", "name": "VARCHAR"}) is None


def test_duckdb_profile_counts_rows_dates_and_few_valued_columns(duck_source, monkeypatch, django_user_model):
    superuser = django_user_model.objects.create_superuser("root", password="x")
    expected = _expected(duck_source)
    profile = datasource_profile(datasource=duck_source)
    impressions = profile["impressions"]
    assert impressions["rows"] == expected["rows"] and impressions["partition_column"] == "ds"
    assert (impressions["first_day"], impressions["last_day"]) == (expected["first_day"], expected["last_day"])
    assert set(impressions["few_values"]) == {"position", "hour", "clicked"}  # user_id, item_id have many
    assert profile["users"]["rows"] == expected["users"] and profile["users"]["partition_column"] is None
    assert "signup_days" not in profile["users"]["few_values"]
    assert profile_cached(duck_source) == profile

    # Cached like the schema: a second read runs no query; the refresh recounts.
    def refuse(*args, **kwargs):
        raise AssertionError("no query expected")

    monkeypatch.setattr(DuckDBBackend, "fetch_one", refuse)
    assert datasource_profile(datasource=duck_source) == profile
    monkeypatch.undo()
    datasource_schema_refresh(datasource=duck_source, user=superuser)
    assert profile_cached(duck_source) == profile


def test_mysql_profile_matches_duckdb(duck_source, mysql_source):
    duck, mysql = datasource_profile(datasource=duck_source), datasource_profile(datasource=mysql_source)
    for table in ("impressions", "users", "items"):
        assert mysql[table]["rows"] == duck[table]["rows"]
    assert mysql["impressions"]["first_day"] == duck["impressions"]["first_day"]
    assert mysql["impressions"]["last_day"] == duck["impressions"]["last_day"]
    assert {"position", "hour"} <= set(mysql["impressions"]["few_values"])


def test_a_source_that_cannot_be_read_here_says_so_per_table(hive_source):
    profile = datasource_profile(datasource=hive_source)
    assert profile and all("Not readable from this machine" in entry["error"] for entry in profile.values())


def test_launch_and_datasource_pages_show_rows_and_date_ranges(client, business_user, builtin_templates, duck_source):
    client.force_login(business_user)
    expected = _expected(duck_source)
    html = client.get(reverse("admin:training_trainingrun_launch", args=[builtin_templates["binary-lr"].pk])).content
    row = re.search(r'<tr data-table="impressions">(.*?)</tr>', html.decode(), re.S).group(1)
    assert f"{expected['rows']:,}" in row and expected["first_day"] in row and expected["last_day"] in row
    assert "<code>ds</code>" in row
    page = client.get(reverse("admin:training_datasource_change", args=[duck_source.pk])).content.decode()
    assert f"{expected['rows']:,} rows" in page
    assert f"ds from {expected['first_day']} to {expected['last_day']}" in page
