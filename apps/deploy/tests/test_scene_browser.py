"""The scene page in Chromium, as the business developer who owns the scene uses it: versions side by side,
the split editor (its running total and its errors), a gray-release override, publishing through a real RQ
worker, the history with its diff, one-click rollback, and the config a client receives following it."""

from __future__ import annotations

import json

import pytest
import requests

from apps.deploy.models import ConfigEntry, ConfigRevision, Deployment
from tests.live import rq_worker, stop

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PUBLISH_DEADLINE = 60  # seconds a revision may take to go live through the worker before the test gives up


@pytest.fixture
def worker(tmp_path):
    """An RQ worker process: the work runs there, as in production."""
    process = rq_worker(tmp_path / "worker.log")
    yield process
    stop(process)


def wait_until_live(page, revision: int) -> None:
    """Wait, without reloading, until the scene page shows ``revision`` as the published one: the page
    follows a publication by itself while the worker publishes."""
    page.evaluate("window.mlabNotReloaded = true")
    page.wait_for_selector(
        f"#published .mlab-published-revision:text-is('{revision}')", timeout=PUBLISH_DEADLINE * 1000
    )
    assert page.evaluate("window.mlabNotReloaded === true")
    page.wait_for_selector("#mlab-scene:not([data-publishing])")


def client_config(live_server, scene, key: str) -> dict:
    response = requests.get(
        f"{live_server.url}/api/v1/config/{scene.name}/", headers={"Authorization": f"Token {key}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def shares(config: dict) -> dict[int, int]:
    """Buckets per version in a config's allocation."""
    counts: dict[int, int] = {}
    for start, end, version in config["allocation"]:
        counts[version] = counts.get(version, 0) + end - start
    return counts


def set_split(page, weights: dict[int, int]) -> None:
    for version, weight in weights.items():
        page.fill(f"input[name=split-weight_{version}]", str(weight))


def test_split_editor_publish_history_and_one_click_rollback(
    business_user, scene, versions, client_token, admin_login, live_server, worker
):
    _, key = client_token
    page = admin_login("alice", "alice-password")
    page.goto(f"{live_server.url}/admin/deploy/scene/{scene.pk}/change/")

    # Every version side by side, with its lineage, metric and checksum.
    rows = page.locator("table.mlab-versions tbody tr.mlab-version-row")
    assert rows.count() == 3
    for version in versions:
        row = page.locator(f"table.mlab-versions tr[data-version='{version.version}']")
        details = page.locator(f"table.mlab-versions tr[data-details-of='{version.version}']")
        assert f"run {version.run_id}" in row.inner_text() and not details.is_visible()
        row.locator(".mlab-details-toggle").click()  # the rest of the version, in its details row
        assert details.is_visible() and version.sha256 in details.inner_text()
        assert row.locator("td.mlab-key-metric").inner_text().startswith(f"AUC {version.metrics['auc']:.3f}")
    assert "Nothing published yet" in page.locator("#published").inner_text()

    # A bad split: the running total says so while typing, and the server names the problem on the split.
    set_split(page, {1: 80, 2: 10, 3: 0})
    assert page.locator(".mlab-split-total").inner_text() == "90 (must be 100)"
    page.click("input[name=_deploy]")
    assert "Nothing was published" in page.locator("#content-main > .errornote").inner_text()
    assert "The weights must sum to 100; they sum to 90." in page.locator("#split-errors").inner_text()
    assert page.locator("#split-errors").evaluate(  # the page scrolled to it
        "e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }"
    )
    assert page.locator("input[name=split-weight_1]").input_value() == "80"  # what was typed is kept
    # A weight that is wrong by itself is named on its own row.
    set_split(page, {1: 100, 2: -5, 3: 0})
    page.click("input[name=_deploy]")
    v2_row = page.locator("table.mlab-split tr", has=page.locator("input[name=split-weight_2]"))
    assert "greater than or equal to 0" in v2_row.locator(".errorlist").inner_text()
    assert page.locator("table.mlab-split .errorlist").count() == 1
    assert not Deployment.objects.exists()

    # 90/10 with one unit pinned to v2 (gray release), published by the worker.
    set_split(page, {1: 90, 2: 10, 3: 0})
    assert page.locator(".mlab-split-total").inner_text() == "100"
    page.fill("textarea[name=split-overrides]", "vip-7 = 2")
    page.fill("input[name=split-comment]", "canary of v2")
    page.click("input[name=_deploy]")
    assert "Revision 1 of seller-union-ctr saved" in page.locator("ul.messagelist").inner_text()
    page.fill("input[name=split-comment]", "typed while publishing")
    wait_until_live(page, 1)
    assert page.locator("input[name=split-comment]").input_value() == "typed while publishing"
    assert page.locator("#split-editor .mlab-live-now").all_inner_texts() == ["90%", "10%", "—"]
    live_shares = page.locator("table.mlab-versions td.mlab-share").all_inner_texts()
    assert live_shares == ["90%", "10% + 1 pinned", "—"]
    assert page.locator("#mlab-live-split").inner_text() == "v1 90% · v2 10% · 1 pinned unit"
    assert not page.locator("#mlab-config").is_visible()  # the raw config is folded away
    page.click("#published details.mlab-raw-config summary")
    config = json.loads(page.locator("#mlab-config").inner_text())
    assert config["revision"] == 1 and config["overrides"] == {"vip-7": 2}
    assert shares(config) == {1: 9000, 2: 1000}
    assert client_config(live_server, scene, key) == config

    # A second revision: 50/50, no override. The history shows who changed what.
    set_split(page, {1: 50, 2: 50, 3: 0})
    page.fill("textarea[name=split-overrides]", "")
    page.click("input[name=_deploy]")
    wait_until_live(page, 2)
    latest = page.locator("table.mlab-history tr[data-revision='2']")
    assert "v1: 90% → 50%" in latest.inner_text() and "v2: 10% → 50%" in latest.inner_text()
    assert "alice" in latest.inner_text() and "40%" in latest.inner_text()  # units moved
    first = page.locator("table.mlab-history tr[data-revision='1']")
    assert "canary of v2" in first.inner_text()
    assert latest.locator("input[type=submit]").count() == 0  # the newest revision has nothing to roll back to
    assert shares(client_config(live_server, scene, key)) == {1: 5000, 2: 5000}

    # One click rolls back to revision 1: a new revision 3 with its split and override.
    first.locator("input[value='Roll back to r1']").click()
    assert "Rolled back: revision 3 copies revision 1" in page.locator("ul.messagelist").inner_text()
    wait_until_live(page, 3)
    rollback_row = page.locator("table.mlab-history tr[data-revision='3']")
    assert "rollback to r1" in rollback_row.inner_text() and "live" in rollback_row.inner_text()
    assert page.locator("#mlab-live-split").inner_text() == "v1 90% · v2 10% · 1 pinned unit"
    shown = json.loads(page.locator("#mlab-config").text_content())
    received = client_config(live_server, scene, key)
    assert received == shown and received["revision"] == 3
    assert shares(received) == {1: 9000, 2: 1000} and received["overrides"] == {"vip-7": 2}

    entry = ConfigEntry.objects.get(scene=scene)
    assert entry.revision == 3 and entry.content == received
    assert [r.revision for r in ConfigRevision.objects.filter(scene=scene).order_by("revision")] == [1, 2, 3]
    rollback = Deployment.objects.get(scene=scene, revision=3)
    assert rollback.rollback_of == 1 and rollback.author == business_user
