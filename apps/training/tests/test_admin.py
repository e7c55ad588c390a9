"""Admin: data source pages (schema, refresh, no password), and the Launch page's pickers and Preview."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest
from django.urls import reverse

from apps.templates import builtins
from apps.templates.forms import launch_form_class
from apps.training.datasources import backend_for
from apps.training.models import DataSource
from apps.training.sql import SchemaAllowList

pytestmark = pytest.mark.django_db
SECRET = "never-shown-pw-42"


@pytest.fixture
def staff(client, business_user, builtin_templates):
    client.force_login(business_user)
    return client


def launch_url(template, **query):
    url = reverse("admin:training_trainingrun_launch", args=[template.pk])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def test_datasource_page_shows_the_schema_and_never_the_password(staff, duck_source, monkeypatch):
    monkeypatch.setenv("MLAB_DS_TEST_ADMIN_PW", SECRET)
    duck_source.password_env = "MLAB_DS_TEST_ADMIN_PW"
    duck_source.save()
    page = staff.get(reverse("admin:training_datasource_change", args=[duck_source.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    for table, columns in backend_for(duck_source).introspect().items():
        assert f"data-table='{table}'" in html
        for column in columns:
            assert f"<code>{column}</code>" in html
    assert SECRET not in html
    assert "Refresh schema" not in html  # a business developer views sources; refreshing needs the change permission


@pytest.fixture
def source_admin(client, business_user):
    """A business developer who may also change data sources (and so refresh their schema)."""
    from django.contrib.auth.models import Permission

    business_user.user_permissions.add(Permission.objects.get(codename="change_datasource"))
    client.force_login(business_user)
    return client


def test_refresh_button_and_action_reintrospect(source_admin, duck_source, hive_source):
    page = source_admin.get(reverse("admin:training_datasource_change", args=[duck_source.pk]))
    assert "Refresh schema" in page.content.decode()
    response = source_admin.post(reverse("admin:training_datasource_refresh", args=[duck_source.pk]), follow=True)
    assert "Introspected 3 tables of demo." in response.content.decode()
    response = source_admin.post(
        reverse("admin:training_datasource_changelist"),
        {"action": "refresh_schema", "_selected_action": [duck_source.pk, hive_source.pk]},
        follow=True,
    )
    html = response.content.decode()
    assert "Introspected 3 tables of demo." in html and "Introspected 3 tables of odps." in html


def test_an_unreachable_source_shows_why_on_its_page(staff, tmp_path):
    source = DataSource.objects.create(name="gone", kind="duckdb", options={"path": str(tmp_path / "x.duckdb")})
    html = staff.get(reverse("admin:training_datasource_change", args=[source.pk])).content.decode()
    assert "does not exist" in html


def test_admin_refuses_secrets_in_options(client, django_user_model, db):
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    response = client.post(
        reverse("admin:training_datasource_add"),
        {"name": "leaky", "kind": "mysql", "options": '{"database": "w", "password": "hunter2"}', "password_env": ""},
    )
    assert response.status_code == 200
    assert "Secrets do not belong in options" in response.content.decode()
    assert not DataSource.objects.filter(name="leaky").exists()


def _options(html: str, name: str) -> list[str]:
    select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', html, re.S)
    assert select, name
    return re.findall(r'<option value="([^"]*)"', select.group(1))


def _checkboxes(html: str, name: str) -> dict:
    """A columns picker: the ticked columns (in order), and the offered ones per table."""
    picker = re.search(
        rf'<div class="mlab-columns" data-picker="columns" data-name="{name}".*?</div></div>', html, re.S
    )
    assert picker, name
    block = picker.group(0)
    selected = re.search(r'data-role="selected">(.*?)</div>', block, re.S).group(1)
    offered = {
        table: re.findall(r'type="checkbox" name="[^"]+" value="([^"]+)"', body)
        for table, body in re.findall(
            r'<fieldset class="mlab-columns-table" data-table="([^"]+)">(.*?)</fieldset>', block, re.S
        )
    }
    return {"selected": re.findall(r'value="([^"]+)" checked', selected), "offered": offered}


def test_launch_pickers_offer_exactly_the_introspected_tables_and_columns(staff, duck_source, builtin_templates):
    schema = backend_for(duck_source).introspect()
    template = builtin_templates["binary-gbdt"]
    html = staff.get(launch_url(template)).content.decode()
    assert _options(html, "datasource") == ["demo"]
    assert [v for v in _options(html, "sample__table") if v] == list(schema)
    # Each column once, under the table it is read from: the chosen table first, then its joined tables.
    once = list(dict.fromkeys(c for table in ("impressions", "users", "items") for c in schema[table]))
    assert [v for v in _options(html, "sample__partition_column") if v] == once
    # Columns pickers offer each column once, under its table, and only the kinds that fit: numbers for numeric
    # features; text, booleans and whole numbers with few values for categorical ones; never an id, a date or
    # the label. The ticked ones come first.
    features = _checkboxes(html, "sample__features")
    assert features["selected"] == builtins.DEMO_SAMPLE["features"]
    assert features["offered"] == {"impressions": [], "users": [], "items": []}
    categorical = _checkboxes(html, "sample__categorical_features")
    assert categorical["selected"] == ["gender", "city_tier", "category"]
    assert categorical["offered"] == {"impressions": ["position", "hour"], "users": ["is_vip"], "items": []}
    assert 'data-rows="conditions"' in html and 'id="mlab-schema"' in html
    embedded = re.search(r'<script id="mlab-schema" type="application/json">(.*?)</script>', html, re.S).group(1)
    tables = {t["name"]: {c["name"]: c["type"] for c in t["columns"]} for t in json.loads(embedded)}
    assert tables == schema
    form = launch_form_class(template, allowlist=SchemaAllowList(schema))()
    assert form.fields["sample__features"].initial == [
        "age",
        "signup_days",
        "is_vip",
        "price",
        "seller_rating",
        "discount",
        "position",
        "hour",
    ]


def test_launch_form_with_pickers_posts_like_the_api(staff, duck_source, builtin_templates):
    template = builtin_templates["binary-lr"]
    data = {
        "datasource": "demo",
        "sample__features": ["age", "price", "hour"],
        "sample__categorical_features": ["gender", "category"],
        "sample__filters": '[{"column": "age", "op": ">", "value": "thirty"}]',
        "_validate": "1",
    }
    response = staff.post(launch_url(template), data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "is not a number" in errors["sample__filters"][0]
    data["sample__filters"] = '[{"column": "age", "op": ">", "value": 30}, {"column": "nope", "op": "is null"}]'
    errors = staff.post(launch_url(template), data).context["form"].errors
    assert "nope" in errors["sample__filters"][0]


def test_preview_button_shows_sql_row_count_and_first_rows(staff, duck_source, builtin_templates):
    template = builtin_templates["binary-lr"]
    response = staff.post(
        launch_url(template),
        {
            "datasource": "demo",
            "sample__features": ["age", "price"],
            "sample__categorical_features": ["city_tier"],
            "sample__date_from": "2026-10-08",
            "sample__date_to": "2026-10-08",
            "sample__preview_rows": "4",
            "sample__filters": '[{"column": "city_tier", "op": "like", "value": "tier"}]',
            "_preview": "1",
        },
    )
    assert response.status_code == 200
    assert response.context["form"].is_valid(), response.context["form"].errors
    html = response.content.decode()
    assert 'id="mlab-sql"' in html and "LIKE '%tier%' ESCAPE" in unescape(html)
    preview = response.context["preview"]
    with backend_for(duck_source).connect() as con:
        expected = con.execute("SELECT COUNT(*) FROM impressions WHERE ds = DATE '2026-10-08'").fetchone()[0]
    assert preview.row_count == expected
    assert f"<strong>{expected:,}</strong>" in html
    assert len(preview.rows) == 4 and html.count("<tr><td>") >= 4
    assert [c["name"] for c in preview.columns] == ["age", "price", "city_tier", "clicked"]


def test_launch_page_says_when_the_source_is_unreachable(staff, builtin_templates, tmp_path):
    DataSource.objects.create(name="gone", kind="duckdb", options={"path": str(tmp_path / "x.duckdb")})
    html = staff.get(launch_url(builtin_templates["binary-lr"], datasource="gone")).content.decode()
    assert 'id="mlab-source-error"' in html and "does not exist" in html
    assert 'name="_preview"' not in html
