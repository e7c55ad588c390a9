"""A business developer launches a run from the admin in Chromium and watches it succeed with its charts."""

from __future__ import annotations

import pytest

from apps.demo.setup import DEMO_PASSWORD, DEMO_USERNAME, demo_user_sync
from apps.training.models import TrainingRun
from tests.live import rq_worker, stop

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(tmp_path):
    """An RQ worker process: the work runs there, as in production."""
    process = rq_worker(tmp_path / "worker.log")
    yield process
    stop(process)


def test_launch_a_run_from_the_admin_and_see_it_succeed_with_charts(
    builtin_templates, duck_source, admin_login, live_server, worker
):
    demo_user_sync()
    page = admin_login(DEMO_USERNAME, DEMO_PASSWORD)
    template = builtin_templates["binary-gbdt"]
    page.goto(f"{live_server.url}/admin/training/trainingrun/launch/{template.pk}/")
    assert page.locator("#id_datasource").input_value() == "demo"
    page.select_option("#id_engine", "local")
    page.locator("input[name=train__treeCount]").fill("15")
    page.click("#mlab-launch-button")

    page.wait_for_selector("#mlab-run")
    run = TrainingRun.objects.get()
    assert page.url.endswith(f"/admin/training/trainingrun/{run.pk}/change/")
    # The heading and the banner say where the run is, and follow it.
    seen = page.locator("#mlab-run-title [data-role=status]").inner_text()
    banner = page.locator("#mlab-run-banner").inner_text()
    assert seen in ("queued", "running", "succeeded")
    assert banner.startswith({"queued": "Queued", "running": "Train", "succeeded": "Done"}[seen])
    assert run.params["train"]["treeCount"] == 15 and run.owner.username == DEMO_USERNAME
    # The page follows the run by itself and shows the results when it ends.
    page.wait_for_selector("#mlab-run[data-status=succeeded]", timeout=90_000)
    assert page.locator("#mlab-run-status").inner_text() == "succeeded"
    assert page.locator("#mlab-run-title [data-role=status]").inner_text() == "succeeded"
    assert "Done: the model is ready." in page.locator("#mlab-run-banner").inner_text()
    assert page.locator("#mlab-run-progress").get_attribute("value") == "100"
    roc = page.locator("svg[data-chart=roc]")
    assert roc.is_visible() and "AUC" in roc.get_attribute("aria-label")
    assert page.locator("svg[data-chart=importance] rect.mlab-chart-bar").count() >= 5
    assert page.locator(".mlab-metrics th:has-text('auc')").count() == 1
    assert "FROM" in page.locator(".mlab-sql").inner_text()
    assert page.locator("#mlab-run-log tr").count() >= 5
    assert page.locator("#mlab-register").get_attribute("href").endswith(f"/register-run/{run.pk}/")

    page.click("#mlab-relaunch")
    page.wait_for_selector("#mlab-run")
    relaunched = TrainingRun.objects.exclude(pk=run.pk).get()
    assert relaunched.retry_of_id == run.pk and relaunched.params == run.params
    page.wait_for_selector("#mlab-run[data-status=succeeded]", timeout=90_000)


def test_a_failed_run_says_why(builtin_templates, duck_source, admin_login, live_server, worker):
    demo_user_sync()
    page = admin_login(DEMO_USERNAME, DEMO_PASSWORD)
    template = builtin_templates["binary-lr"]
    page.goto(f"{live_server.url}/admin/training/trainingrun/launch/{template.pk}/")
    # a filter that keeps only clicked impressions leaves one class
    page.locator("textarea[name=sample__filters]").evaluate(
        "(el) => { el.value = JSON.stringify([{column: 'clicked', op: '=', value: 1}]); }"
    )
    page.click("#mlab-launch-button")
    page.wait_for_selector("#mlab-run[data-status=failed]", timeout=90_000)
    assert "one class" in page.locator("#mlab-run-error").inner_text()
