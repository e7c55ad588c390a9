"""The business developer's whole path in Chromium at 1366×768, as issue 14 measures it: login → a launched run →
a registered version → an 80/20 deployment → a rollback, in at most 10 clicks and 8 typed fields, no page
needing horizontal scrolling, a screenshot of every page (under var/screenshots/, path printed), and the texts a
person reads asserted: the metric hints, the published split in words, the compare table's differences.

Then, off the counted path: "Edit and relaunch" with one parameter changed, and the two runs compared.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.demo.setup import DEMO_PASSWORD, DEMO_USERNAME, demo_user_sync
from apps.deploy.models import ConfigEntry, Deployment
from apps.deploy.services import (
    deployment_create,
    model_version_register,
    publication_inline,
    scene_create,
)
from apps.training.models import TrainingRun
from tests.factories import TrainingRunFactory
from tests.live import rq_worker, stop

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MAX_CLICKS, MAX_FIELDS = 10, 8
VIEWPORT = {"width": 1366, "height": 768}
TRAINING_DEADLINE_MS = 120_000
PUBLISH_DEADLINE_MS = 60_000


@pytest.fixture
def worker(tmp_path):
    """An RQ worker process: training and publication run there, as in production."""
    process = rq_worker(tmp_path / "worker.log")
    yield process
    stop(process)


@pytest.fixture
def screen(browser):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


class Path_:
    """Counts what a person does: clicks and typed fields. Checks every page's width and screenshots it."""

    def __init__(self, page, directory: Path) -> None:
        self.page = page
        self.directory = directory
        self.clicks = 0
        self.fields = 0
        self.shots: list[Path] = []

    def click(self, selector: str) -> None:
        self.clicks += 1
        self.page.click(selector)

    def fill(self, selector: str, value: str) -> None:
        self.fields += 1
        self.page.fill(selector, value)

    def look(self, name: str) -> None:
        """This page, as a person sees it: nothing to scroll sideways, and a screenshot."""
        width = self.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"{name}: the page is {width[0]} px wide in a {width[1]} px window"
        path = self.directory / f"{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)


@pytest.fixture
def live_v1(builtin_templates, duck_source):
    """The demo user's scene, serving v1 (a logistic regression trained earlier) to every unit."""
    demo_user_sync()
    from django.contrib.auth import get_user_model

    owner = get_user_model().objects.get(username=DEMO_USERNAME)
    scene = scene_create(name="seller-union-ctr", description="Click-through of seller-union ads", user=owner)
    earlier = TrainingRunFactory(
        owner=owner,
        datasource=duck_source,
        name="last month's baseline",
        metrics={"auc": 0.74, "ks": 0.36, "log_loss": 0.36, "accuracy": 0.875, "positive_rate": 0.125},
    )
    model_version_register(run=earlier, scene=scene, user=owner)
    with publication_inline():
        deployment_create(scene=scene, splits=[{"version": 1, "weight": 100}], comment="baseline", user=owner)
    return scene


def test_login_to_rollback_in_few_clicks_and_fields(live_v1, live_server, screen, worker, shots_dir, capsys):
    scene = live_v1
    path = Path_(screen, shots_dir)
    page = screen
    page.goto(f"{live_server.url}/")  # the root leads to the admin's login
    page.wait_for_selector("#id_username")
    path.look("login")
    path.fill("#id_username", DEMO_USERNAME)
    path.fill("#id_password", DEMO_PASSWORD)
    path.click("input[type=submit]")

    # The index starts with "Launch" per template.
    page.wait_for_selector("#mlab-start")
    path.look("index")
    path.click("a.mlab-start-launch[data-template=binary-lr]")

    # The Launch page: presets ready, each table's rows and dates shown, Launch at hand.
    page.wait_for_selector("#mlab-launch-form")
    assert "20,000" in page.locator("#mlab-table-profiles tr[data-table=impressions]").inner_text()
    path.look("launch")
    path.click("#mlab-launch-now")

    # The run page follows the run: its heading and banner say where it is, then the results with hints.
    page.wait_for_selector("#mlab-run")
    run = TrainingRun.objects.exclude(pk=scene.versions.get().run_id).get()
    assert page.locator("#mlab-run-title").inner_text().startswith(f"Run {run.pk} · ")
    page.wait_for_selector("#mlab-run[data-status=succeeded]", timeout=TRAINING_DEADLINE_MS)
    assert page.locator("#mlab-run-title [data-role=status]").inner_text() == "succeeded"
    assert "Done: the model is ready." in page.locator("#mlab-run-banner").inner_text()
    auc = page.locator("#mlab-run-results tr[data-metric=auc]")
    assert auc.is_visible() and "0.5 = coin toss, 1.0 = perfect" in auc.inner_text()
    assert any(word in auc.inner_text() for word in ("Good:", "Fair:", "Weak:", "Poor:", "Suspiciously"))
    live = page.locator("#mlab-live-compare tr[data-version='1']")
    assert "AUC" in live.inner_text() and "against 0.740" in live.inner_text()  # compared with what is live
    path.look("run")
    path.click("#mlab-register")

    # Register: the scene is preselected.
    page.wait_for_selector("#mlab-register-submit")
    assert page.locator("#id_scene option:checked").inner_text() == scene.name
    path.look("register")
    path.click("#mlab-register-submit")

    # The scene page: 80/20, published by the worker, the split in words where one looks.
    page.wait_for_selector("#split-editor")
    assert page.locator("#mlab-live-split").inner_text() == "v1 100%"
    path.look("scene")
    path.fill("input[name=split-weight_1]", "80")
    path.fill("input[name=split-weight_2]", "20")
    path.click("#mlab-publish")
    page.wait_for_selector("#mlab-scene-messages")
    assert "Revision 2 of seller-union-ctr saved (v1 80% · v2 20%)" in page.locator("#mlab-scene-messages").inner_text()
    assert page.locator("#mlab-scene-messages").is_visible()
    page.wait_for_selector("#published .mlab-published-revision:text-is('2')", timeout=PUBLISH_DEADLINE_MS)
    assert page.locator("#mlab-live-split").inner_text() == "v1 80% · v2 20%"
    assert page.locator("table.mlab-history tr[data-revision='2'] .mlab-state").inner_text() == "live"
    path.look("published")

    # One click rolls back to revision 1.
    path.click("table.mlab-history tr[data-revision='1'] input[value='Roll back to r1']")
    page.wait_for_selector("#published .mlab-published-revision:text-is('3')", timeout=PUBLISH_DEADLINE_MS)
    assert page.locator("#mlab-live-split").inner_text() == "v1 100%"
    assert "rollback to r1" in page.locator("table.mlab-history tr[data-revision='3']").inner_text()
    path.look("rolled-back")

    assert ConfigEntry.objects.get(scene=scene).revision == 3
    assert Deployment.objects.get(scene=scene, revision=3).rollback_of == 1
    with capsys.disabled():  # shown even when pytest captures output
        print(f"\nadmin path: {path.clicks} clicks, {path.fields} fields; screenshots in {shots_dir}")
    assert path.clicks <= MAX_CLICKS and path.fields <= MAX_FIELDS, (path.clicks, path.fields)

    # Off the counted path: "Edit and relaunch" without the price (one click in the feature picker) and with
    # fewer iterations, then compare the two runs.
    page.goto(f"{live_server.url}/admin/training/trainingrun/{run.pk}/change/")
    page.click("#mlab-edit-relaunch")
    page.wait_for_selector("#mlab-relaunch-notice")
    page.locator(".mlab-columns[data-name=sample__features] .mlab-column", has_text="price").click()
    page.locator("fieldset[data-node=train] button.mlab-tab:has-text('Parameters setting')").click()
    page.fill("input[name=train__maxIter]", "40")
    page.click("#mlab-launch-button")
    page.wait_for_selector("#mlab-run[data-status=succeeded]", timeout=TRAINING_DEADLINE_MS)
    relaunched = TrainingRun.objects.get(retry_of=run)
    assert relaunched.params["train"]["maxIter"] == 40 and "price" not in relaunched.params["sample"]["features"]

    page.goto(f"{live_server.url}/admin/training/trainingrun/")
    page.check(f"input.action-select[value='{run.pk}']")
    page.check(f"input.action-select[value='{relaunched.pk}']")
    page.select_option("select[name=action]", "compare_runs")
    page.click("button[name=index]")
    page.wait_for_selector("#mlab-compare-params")
    differing = page.locator("#mlab-compare-params tr.mlab-differs")
    assert differing.evaluate_all("rows => rows.map(r => r.dataset.param)") == ["sample.features", "train.maxIter"]
    iterations = page.locator("#mlab-compare-params tr.mlab-differs[data-param='train.maxIter']")
    assert iterations.inner_text().split("\t")[1:] == ["100", "40"]
    assert "price" not in differing.first.locator("td").nth(1).inner_text().split("\n")[0]
    assert differing.first.locator("td").nth(1).locator(".mlab-diff-note").inner_text() == "without price"
    background = iterations.locator("td").first.evaluate("td => getComputedStyle(td).backgroundColor")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")  # highlighted
    assert page.locator("svg[data-chart=roc-overlay] polyline.mlab-chart-series").count() == 2
    assert page.locator("#mlab-compare-metrics tr[data-metric=auc] td.mlab-best").count() == 1
    path.look("compare")
