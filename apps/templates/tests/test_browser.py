"""The template pages and the Launch page in a real browser (Chromium)."""

from __future__ import annotations

import pytest

from apps.demo.setup import DEMO_PASSWORD, DEMO_USERNAME, demo_user_sync

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(builtin_templates):
    demo_user_sync()
    return builtin_templates


def test_business_developer_opens_a_template_and_launch_page(demo, admin_login, live_server):
    page = admin_login(DEMO_USERNAME, DEMO_PASSWORD)
    page.goto(f"{live_server.url}/admin/algo_templates/algorithmtemplate/")
    page.click("a:has-text('Binary classification · gradient-boosted trees')")
    page.wait_for_selector("h4.mlab-group")
    for group in ("Fields setting", "Parameters setting", "Execution tuning"):
        assert page.locator(f"h4.mlab-group:has-text('{group}')").count() >= 1
    assert page.locator("table.mlab-params >> text=treeCount").count() == 1

    page.click("text=Launch training")
    page.wait_for_selector("#mlab-launch-form")
    # tabs per node: the training node's "Parameters setting" tab is active, its tuning tab hidden
    train = page.locator("fieldset[data-node=train]")
    assert train.locator("input[name=train__treeCount]").input_value() == "60"
    assert not train.locator("input[name=train__coreNum]").is_visible()
    train.locator("button.mlab-tab:has-text('Execution tuning')").click()
    assert train.locator("input[name=train__coreNum]").is_visible()
    label = page.locator("input[name=sample__label]")
    assert label.is_disabled() and label.input_value() == "clicked"

    # a bad value: the error names the field and its tab opens by itself
    train.locator("button.mlab-tab:has-text('Parameters setting')").click()
    train.locator("input[name=train__treeCount]").fill("0")
    train.locator("button.mlab-tab:has-text('Execution tuning')").click()
    page.click("input[name=_validate]")
    error = page.locator(".field-train__treeCount .errorlist")
    assert error.inner_text() == "Must be at least 1."
    assert error.is_visible()

    page.locator("input[name=train__treeCount]").fill("80")
    page.locator("fieldset[data-node=sample] button.mlab-tab:has-text('Parameters setting')").click()
    page.locator("input[name=sample__access_token]").fill("tok-browser-secret")
    page.click("input[name=_validate]")
    page.wait_for_selector("#mlab-validated")
    payload = page.locator("#mlab-payload").inner_text()
    assert '"treeCount": 80' in payload
    assert "tok-browser-secret" not in page.content()
