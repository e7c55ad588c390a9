"""The Launch page in a real browser: pickers fed by introspection, filter rows, and Preview."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.browser]


def test_filter_rows_and_pickers_post_json_and_preview_shows_sql_and_rows(
    transactional_db, live_server, admin_login, django_user_model, builtin_templates, duck_source
):
    django_user_model.objects.create_superuser("root", password="root-pw")
    page = admin_login("root", "root-pw")
    template = builtin_templates["binary-lr"]
    page.goto(f"{live_server.url}/admin/training/trainingrun/launch/{template.pk}/")

    assert page.locator("#id_datasource").input_value() == "demo"
    groups = page.locator('select[name="sample__features"] optgroup:not([hidden])').evaluate_all(
        "gs => gs.map(g => g.label)"
    )
    assert groups == ["impressions", "items", "users"]

    page.click('button[data-tab="sample-parameters"]')
    assert not page.locator('textarea[name="sample__filters"]').is_visible()  # rows stand in for it
    page.click('.mlab-rows[data-for="sample__filters"] .mlab-row-add')
    row = page.locator('.mlab-rows[data-for="sample__filters"] .mlab-row').first
    row.locator(".mlab-filter-column").select_option("city_tier")
    row.locator(".mlab-filter-op").select_option("like")
    row.locator(".mlab-filter-value").fill("tier")
    page.click('.mlab-rows[data-for="sample__filters"] .mlab-row-add')
    second = page.locator('.mlab-rows[data-for="sample__filters"] .mlab-row').nth(1)
    second.locator(".mlab-filter-column").select_option("age")
    second.locator(".mlab-filter-op").select_option("between")
    second.locator(".mlab-filter-value").fill("20, 40")
    posted = json.loads(page.locator('textarea[name="sample__filters"]').input_value())
    assert posted == [
        {"column": "city_tier", "op": "like", "value": "tier"},
        {"column": "age", "op": "between", "value": [20, 40]},
    ]

    page.fill('input[name="sample__date_from"]', "2026-10-04")
    page.fill('input[name="sample__date_to"]', "2026-10-04")
    page.click("#mlab-preview-button")
    page.wait_for_selector("#mlab-sql")
    sql = page.locator("#mlab-sql").inner_text()
    assert "LIKE '%tier%'" in sql and "BETWEEN 20 AND 40" in sql
    assert "rows; the first" in page.locator("#mlab-row-count").inner_text()
    assert page.locator("#mlab-preview tbody tr").count() > 0
