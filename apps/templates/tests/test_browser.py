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
    # The chain as a picture; the first node's parameters show, in their tabs.
    page.wait_for_selector("svg.mlab-chain")
    sample = page.locator(".mlab-chain-panel[data-node=sample]")
    train = page.locator(".mlab-chain-panel[data-node=train]")
    assert sample.is_visible() and not train.is_visible()
    assert sample.locator("tr[data-param=label]").inner_text().split("\t")[1:3] == ["clicked", "preset locked"]
    # A click on the training node shows its parameters; its tabs switch between parameters and tuning.
    page.locator(".mlab-chain-node[data-node=train]").click()
    assert train.is_visible() and not sample.is_visible()
    assert [t.inner_text().rsplit(" ", 1)[0] for t in train.locator(".mlab-tab").all()] == [
        "Parameters setting",
        "Execution tuning",
    ]
    assert train.locator("tr[data-param=treeCount]").is_visible()
    assert not train.locator("tr[data-param=coreNum]").is_visible()
    train.locator(".mlab-tab:has-text('Execution tuning')").click()
    assert train.locator("tr[data-param=coreNum]").is_visible()
    assert page.url.endswith("#node-train")

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
