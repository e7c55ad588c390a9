"""Issue 11 item 2: the RQ dashboard was open to every staff user, who could empty queues and delete others'
jobs, and a run whose job was deleted stayed queued for ever. The dashboard is for superusers; the reaper
queues such a run again once, then fails it with a plain reason, and says so in the run's log."""

from __future__ import annotations

from datetime import timedelta

import django_rq
import pytest
from django.utils import timezone
from rq.job import Job

from apps.training.models import TrainingRun
from apps.training.services import training_runs_reap
from apps.training.services.runs import QUEUE_LOST

pytestmark = pytest.mark.django_db


def test_the_rq_dashboard_is_for_superusers_only(client, business_user, django_user_model):
    client.force_login(business_user)  # staff, in the business developers' group
    for path in ("/django-rq/", "/django-rq/queues/0/"):
        response = client.get(path)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    assert client.get("/django-rq/").status_code == 200


def _queued_run(api, source, django_capture_on_commit_callbacks) -> TrainingRun:
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/runs/", {"template": "binary-lr", "datasource": source.name, "engine": "local"}, format="json"
        )
    assert response.status_code == 201, response.content
    return TrainingRun.objects.get(pk=response.json()["id"])


def _age(run: TrainingRun, seconds: float) -> None:
    TrainingRun.objects.filter(pk=run.pk).update(updated_at=timezone.now() - timedelta(seconds=seconds))


def _delete_job(run: TrainingRun) -> None:
    run.refresh_from_db()
    queue = django_rq.get_queue("default")
    Job.fetch(run.rq_job_id, connection=queue.connection, serializer=queue.serializer).delete()


def test_a_run_whose_job_was_deleted_is_queued_again_once_then_failed(
    api, builtin_templates, duck_source, django_capture_on_commit_callbacks
):
    run = _queued_run(api, duck_source, django_capture_on_commit_callbacks)
    first_job = run.rq_job_id
    _delete_job(run)
    _age(run, 120)
    assert training_runs_reap() == 1
    run.refresh_from_db()
    assert run.status == "queued" and run.requeues == 1 and run.rq_job_id and run.rq_job_id != first_job
    queue = django_rq.get_queue("default")
    assert Job.exists(run.rq_job_id, connection=queue.connection)

    assert training_runs_reap() == 0  # the new job exists: nothing to do
    _delete_job(run)
    _age(run, 120)
    assert training_runs_reap() == 1
    run.refresh_from_db()
    assert run.status == "failed" and run.error == QUEUE_LOST
    log = list(run.events.values_list("level", "message"))
    assert ("warning", "Queued again: its job was lost from the queue.") in log
    assert log[-1] == ("error", QUEUE_LOST)


def test_a_run_that_waited_past_the_limit_is_queued_again_then_failed(
    api, builtin_templates, duck_source, django_capture_on_commit_callbacks, settings
):
    settings.MLAB_RUN_QUEUE_LIMIT_SECONDS = 3600
    run = _queued_run(api, duck_source, django_capture_on_commit_callbacks)
    _age(run, 600)
    assert training_runs_reap() == 0  # its job is there and it has not waited an hour
    _age(run, 3700)
    assert training_runs_reap() == 1
    run.refresh_from_db()
    assert run.status == "queued" and run.requeues == 1
    _age(run, 3700)
    training_runs_reap()
    run.refresh_from_db()
    assert run.status == "failed" and "waited more than 1 hour in the queue" in run.error


def test_a_fresh_queued_run_is_left_alone(api, builtin_templates, duck_source, django_capture_on_commit_callbacks):
    run = _queued_run(api, duck_source, django_capture_on_commit_callbacks)
    _delete_job(run)  # within the grace period its job may simply not be enqueued yet
    assert training_runs_reap() == 0
    run.refresh_from_db()
    assert run.status == "queued" and run.requeues == 0
