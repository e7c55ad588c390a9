"""Cancelling a long boosted-trees fit on a real RQ worker: it stops between two boosting rounds."""

from __future__ import annotations

import time

import pytest

from apps.training.models import TrainingRun
from apps.training.services.runs import training_run_create
from apps.training.tests.runs_support import wait_for
from tests.live import rq_worker, stop

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
Status = TrainingRun.Status
CANCEL_WITHIN_SECONDS = 2.0  # issue 13: a cancel takes effect between rounds, not at the end of the fit
LONG_FIT = {"treeCount": 10_000, "maxDepth": 8, "shrinkage": 0.01}  # tens of seconds on the test warehouse


def test_a_cancel_stops_a_long_fit_between_rounds(api, builtin_templates, duck_source, user, tmp_path):
    run = training_run_create(
        template=builtin_templates["binary-gbdt"], params={"train": LONG_FIT}, engine="local",
        datasource=duck_source, user=user,
    )  # fmt: skip
    worker = rq_worker(tmp_path / "worker.log", scheduler=False)
    try:
        wait_for(
            lambda: TrainingRun.objects.filter(pk=run.pk, stage="fitting").exists(),
            "the run to be fitting",
            interval=0.02,
        )
        time.sleep(1.5)  # well into the rounds (the training matrix of 16,000 rows takes milliseconds)
        requested = time.monotonic()
        response = api.post(f"/api/v1/runs/{run.pk}/cancel/")
        assert response.status_code == 200, response.content
        cancelled = wait_for(
            lambda: TrainingRun.objects.filter(pk=run.pk, status__in=[Status.CANCELLED, Status.FAILED]).first(),
            "the run to stop",
            interval=0.02,
        )
        waited = time.monotonic() - requested
    finally:
        stop(worker)
    assert cancelled.status == Status.CANCELLED, cancelled.error
    assert cancelled.artifact_id is None
    assert waited <= CANCEL_WITHIN_SECONDS, f"the run went on for {waited:.2f} s after the cancel"
    assert 10 < cancelled.progress < 95  # stopped while fitting, far from the end of 10,000 rounds
