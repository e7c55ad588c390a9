"""The Results section of the scene page in Chromium, as its owner reads it: the per-version table, the uplift,
the daily chart, the red SRM banner, and the guardrail's rollback said on the page."""

from __future__ import annotations

import pytest

from apps.deploy.services import scene_publish, scene_update

from .test_client_apis import as_client
from .test_results import publish, routed, simulate

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_results_section_in_a_browser(
    business_user, scene, versions, client_token, admin_login, live_server, shots_dir
):
    app = as_client(client_token[1])
    publish(scene, business_user, {1: 100})
    scene_update(scene=scene, guardrail_metric="click", guardrail_min_units=150)
    ab = publish(scene, business_user, {1: 50, 2: 50})
    units = routed(scene, 2000)
    lopsided = [(u, v) for i, (u, v) in enumerate(units) if v == 1 or i % 3 == 0]  # v2 loses 2 units in 3
    simulate(app, scene, ab.revision, lopsided[:300], rate={1: 0.3, 2: 0.3})

    page = admin_login("alice", "alice-password")
    page.goto(f"{live_server.url}/admin/deploy/scene/{scene.pk}/change/")
    results = page.locator("#results")
    assert "Revision 2 (published), metric click" in results.inner_text()
    rows = results.locator("table.mlab-results-versions tbody tr")
    assert rows.count() == 2 and "control" in rows.first.inner_text()
    assert results.locator("table.mlab-results-uplifts tr[data-version='2']").count() == 1
    banner = page.locator("#results-srm-banner")
    assert banner.is_visible() and "Sample ratio mismatch" in banner.inner_text()
    red = banner.evaluate("node => getComputedStyle(node).backgroundColor")
    assert red == "rgb(251, 227, 228)"  # the stylesheet of the section was loaded
    chart = results.locator("svg[data-chart='results-daily']")
    assert chart.is_visible() and chart.locator("circle").count() == 2  # one day, two versions
    assert "Guardrail: waiting" in results.inner_text()
    results.screenshot(path=shots_dir / "01-results-srm.png")

    simulate(app, scene, ab.revision, lopsided[300:], rate={1: 0.45, 2: 0.02}, seed=4)  # v2 now far worse
    scene_publish(scene_id=scene.pk)
    page.reload()
    tripped = page.locator("#results .mlab-banner-guardrail")
    assert tripped.is_visible()
    assert "The guardrail rolled back revision 2" in tripped.inner_text()
    assert "v2 is worse than control v1 on click" in tripped.inner_text()
    assert "Revision 3 (published)" in page.locator("#results").inner_text()
    page.locator("#results").screenshot(path=shots_dir / "02-guardrail-rolled-back.png")
    history = page.locator("table.mlab-history tr[data-revision='3']")
    assert "Guardrail: v2 is worse than control v1" in history.inner_text()
