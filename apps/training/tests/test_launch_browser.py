"""The Launch page in a real browser: pickers fed by introspection, filter rows, and Preview."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.browser]


def ticked(picker) -> list[str]:
    return picker.locator("input[type=checkbox]:checked").evaluate_all("boxes => boxes.map(b => b.value)")


def test_a_click_on_a_column_ticks_or_unticks_that_column_only(
    transactional_db, live_server, admin_login, django_user_model, builtin_templates, duck_source
):
    django_user_model.objects.create_superuser("root", password="root-pw")
    page = admin_login("root", "root-pw")
    page.goto(f"{live_server.url}/admin/training/trainingrun/launch/{builtin_templates['binary-lr'].pk}/")
    features = page.locator(".mlab-columns[data-name=sample__features]")
    preset = ticked(features)
    assert len(preset) == 8 and features.locator(".mlab-columns-count").inner_text() == "8 selected"
    # Offered: numbers only, each once under its table; no id, no date, not the label.
    offered = features.locator(".mlab-column").evaluate_all("ls => ls.map(l => l.querySelector('input').value)")
    assert sorted(offered) == sorted(preset) and not {"user_id", "item_id", "ds", "clicked"} & set(offered)

    features.locator(".mlab-column", has_text="age").click()  # one ordinary click: age only
    assert ticked(features) == [c for c in preset if c != "age"]
    assert features.locator(".mlab-columns-count").inner_text() == "7 selected"
    users = features.locator(".mlab-columns-table[data-table=users]")
    assert users.locator(".mlab-column", has_text="age").is_visible()  # back under its table
    features.locator(".mlab-columns-filter").fill("sig")
    assert features.locator(".mlab-columns-table .mlab-column:visible").count() == 0  # signup_days is ticked
    features.locator(".mlab-columns-filter").fill("ag")
    users.locator(".mlab-column", has_text="age").click()
    assert ticked(features)[-1] == "age" and features.locator(".mlab-columns-count").inner_text() == "8 selected"

    categorical = page.locator(".mlab-columns[data-name=sample__categorical_features]")
    offered = categorical.locator(".mlab-columns-table .mlab-column").evaluate_all(
        "ls => ls.map(l => l.querySelector('input').value)"
    )
    assert set(offered) == {"position", "hour", "is_vip"}  # text is ticked already; whole numbers with few values

    # Nothing ticked is an error next to the field; the page scrolls there and its tab is open.
    for picker in (features, categorical):
        while picker.locator("input:checked").count():
            picker.locator("input:checked").first.uncheck()
    page.click("input[name=_validate]")
    error = page.locator(".field-sample__features .errorlist")
    assert "Choose at least one feature column" in error.inner_text()
    assert error.is_visible() and error.evaluate(
        "e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }"
    )


def test_filter_rows_and_pickers_post_json_and_preview_shows_sql_and_rows(
    transactional_db, live_server, admin_login, django_user_model, builtin_templates, duck_source
):
    django_user_model.objects.create_superuser("root", password="root-pw")
    page = admin_login("root", "root-pw")
    template = builtin_templates["binary-lr"]
    page.goto(f"{live_server.url}/admin/training/trainingrun/launch/{template.pk}/")

    assert page.locator("#id_datasource").input_value() == "demo"
    # Each table's row count and date range, so that nobody guesses a date window.
    impressions = page.locator("#mlab-table-profiles tr[data-table=impressions]")
    assert "20,000" in impressions.inner_text() and "2026-10-01" in impressions.inner_text()

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
