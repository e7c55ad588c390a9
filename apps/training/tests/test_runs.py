"""Training runs through their doors (API, command line, jobs) on the local engine, on DuckDB and MariaDB."""

from __future__ import annotations

import io

import onnx
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from apps.artifacts.storage import artifact_read
from apps.training.jobs import run_training
from apps.training.models import TrainingRun
from apps.training.tests.runs_support import run_queued_jobs
from mlab_client.contract import META_SIGNATURE

pytestmark = pytest.mark.django_db
Status = TrainingRun.Status

# The demo data's click model gives about 0.8 AUC to a good classifier on 20,000 impressions.
AUC_BAND = (0.70, 0.88)


def _launch(api, slug, source, params=None, engine="local"):
    return api.post(
        "/api/v1/runs/",
        {"template": slug, "datasource": source.name, "engine": engine, "params": params or {}},
        format="json",
    )


def _launch_and_run(api, slug, source, django_capture_on_commit_callbacks, params=None) -> TrainingRun:
    with django_capture_on_commit_callbacks(execute=True):
        response = _launch(api, slug, source, params)
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "queued"
    run_queued_jobs()
    return TrainingRun.objects.get(pk=response.json()["id"])


@pytest.mark.slow
@pytest.mark.parametrize("source_fixture", ["duck_source", "mysql_source"])
@pytest.mark.parametrize("slug", ["binary-lr", "binary-gbdt", "binary-rf", "regression-linear"])
def test_each_template_trains_on_the_demo_data(
    request, api, builtin_templates, django_capture_on_commit_callbacks, slug, source_fixture
):
    source = request.getfixturevalue(source_fixture)
    run = _launch_and_run(api, slug, source, django_capture_on_commit_callbacks)
    assert run.status == Status.SUCCEEDED, run.error
    assert run.progress == 100 and run.finished_at and run.artifact_id
    if slug == "regression-linear":
        assert run.metrics["r2"] > 0.6
    else:
        assert AUC_BAND[0] < run.metrics["auc"] < AUC_BAND[1]
        assert run.report["roc"]["fpr"] and run.report["feature_importance"]
    assert run.report["parity"]["max_abs_diff"] <= 1e-5
    model = onnx.load_from_string(artifact_read(run.artifact))
    assert META_SIGNATURE in {p.key for p in model.metadata_props}
    stages = list(run.events.values_list("stage", flat=True))
    assert stages[0] == "queued" and "sampling" in stages and stages[-1] == "done"


def test_the_api_shows_the_run_with_sql_payload_and_log(
    api, builtin_templates, duck_source, django_capture_on_commit_callbacks
):
    run = _launch_and_run(
        api,
        "binary-lr",
        duck_source,
        django_capture_on_commit_callbacks,
        params={"train": {"maxIter": 50}, "sample": {"access_token": "tok-run-secret"}},
    )
    body = api.get(f"/api/v1/runs/{run.pk}/").json()
    assert body["status"] == "succeeded" and body["template"] == "binary-lr" and body["datasource"] == "demo"
    assert 'FROM "impressions"' in body["sql"]
    assert body["params"]["train"]["maxIter"] == 50
    assert body["params"]["sample"]["access_token"] == "********"
    assert "tok-run-secret" not in api.get(f"/api/v1/runs/{run.pk}/").content.decode()
    assert "access_token" not in str(body["payload"])
    assert [e["stage"] for e in body["events"]][0] == "queued"
    listing = api.get("/api/v1/runs/?status=succeeded").json()
    assert [r["id"] for r in listing["results"]] == [run.pk]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"template": "nope", "datasource": "demo"}, "template"),
        ({"template": "binary-lr", "datasource": "nope"}, "datasource"),
        ({"template": "binary-lr", "datasource": "demo", "engine": "spark"}, "engine"),
        ({"template": "binary-lr", "datasource": "demo", "params": {"train": {"maxIter": -1}}}, "params"),
        ({"template": "binary-lr", "datasource": "demo", "params": {"sample": {"features": ["nope"]}}}, "params"),
        ({"datasource": "demo"}, "template"),
    ],
)
def test_bad_launches_are_400_naming_the_field_and_create_nothing(api, builtin_templates, duck_source, body, field):
    response = api.post("/api/v1/runs/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not TrainingRun.objects.exists()


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("maxDepth", 0, "Must be at least 1."),
        ("sampleRatio", 0, "Must be greater than 0."),
        ("featureRatio", 1.5, "Must be at most 1."),
        ("shrinkage", 0, "Must be greater than 0."),
        ("minLeafSampleCount", 0, "Must be at least 1."),
        ("l2", -1, "Must be at least 0."),
    ],
)
def test_lightgbm_parameters_out_of_range_are_field_errors(api, builtin_templates, duck_source, param, value, message):
    body = {"template": "binary-gbdt", "datasource": "demo", "params": {"train": {param: value}}}
    response = api.post("/api/v1/runs/", body, format="json")
    assert response.status_code == 400
    assert response.json() == {"params": {"train": {param: [message]}}}
    assert not TrainingRun.objects.exists()


def test_a_source_this_machine_cannot_read_is_refused_by_every_door(
    api, client, business_user, builtin_templates, hive_source
):
    response = _launch(api, "binary-lr", hive_source)
    assert response.status_code == 400 and "cannot be read from this machine" in response.json()["datasource"][0]
    with pytest.raises(CommandError, match=f"datasource: {hive_source.name} .* cannot be read from this machine"):
        call_command("train", "binary-lr", "--datasource", hive_source.name, "--user", business_user.username)
    client.force_login(business_user)
    template = builtin_templates["binary-lr"]
    response = client.post(
        reverse("admin:training_trainingrun_launch", args=[template.pk]),
        {"datasource": hive_source.name, "engine": "local", "_launch": "1"},
    )
    assert "cannot be read from this machine" in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_runs_of_others_are_invisible(api, builtin_templates, duck_source, other_user):
    from apps.training.services import training_run_create

    theirs = training_run_create(
        template=builtin_templates["binary-lr"], params={}, engine="local", datasource=duck_source, user=other_user
    )
    assert api.get(f"/api/v1/runs/{theirs.pk}/").status_code == 404
    assert api.post(f"/api/v1/runs/{theirs.pk}/cancel/").status_code == 404
    assert api.get("/api/v1/runs/").json()["count"] == 0


def test_runs_need_a_token(anon_api):
    assert anon_api.get("/api/v1/runs/").status_code == 401
    assert anon_api.post("/api/v1/runs/", {}, format="json").status_code == 401


def test_a_run_is_enqueued_only_after_commit(api, builtin_templates, duck_source, django_capture_on_commit_callbacks):
    import django_rq

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert _launch(api, "binary-lr", duck_source).status_code == 201
        assert django_rq.get_queue("default").count == 0
    assert len(callbacks) == 1
    callbacks[0]()
    assert django_rq.get_queue("default").count == 1


def test_cancel_a_queued_run_and_relaunch_it(api, builtin_templates, duck_source, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run_id = _launch(api, "binary-gbdt", duck_source, {"train": {"treeCount": 7}}).json()["id"]
    cancelled = api.post(f"/api/v1/runs/{run_id}/cancel/").json()
    assert cancelled["status"] == "cancelled"
    run_queued_jobs()  # the queued job finds the run cancelled and does nothing
    assert TrainingRun.objects.get(pk=run_id).status == Status.CANCELLED
    with django_capture_on_commit_callbacks(execute=True):
        retry = api.post(f"/api/v1/runs/{run_id}/retry/")
    assert retry.status_code == 201
    assert retry.json()["retry_of"] == run_id and retry.json()["params"]["train"]["treeCount"] == 7
    run_queued_jobs()
    assert TrainingRun.objects.get(pk=retry.json()["id"]).status == Status.SUCCEEDED


def test_cancel_during_training_stops_at_the_next_stage(
    api, builtin_templates, duck_source, django_capture_on_commit_callbacks, monkeypatch
):
    from apps.training import trainer
    from apps.training.engines import local

    with django_capture_on_commit_callbacks(execute=True):
        run_id = _launch(api, "binary-gbdt", duck_source, {"train": {"treeCount": 30}}).json()["id"]
    real_train = trainer.train

    def train_and_get_cancelled(payload, sample, *, progress=None, threads=None):
        def progress_and_cancel(stage, percent, message):
            if stage == "fitting":  # the business developer clicks Cancel while the model fits
                TrainingRun.objects.filter(pk=run_id).update(cancel_requested=True)
                progress.check_cancelled_now()
            progress(stage, percent, message)

        return real_train(payload, sample, progress=progress_and_cancel, threads=threads)

    monkeypatch.setattr(local.trainer, "train", train_and_get_cancelled)
    run_queued_jobs()
    run = TrainingRun.objects.get(pk=run_id)
    assert run.status == Status.CANCELLED and run.artifact_id is None
    assert run.events.last().message == "Cancelled; nothing was saved."


def test_bad_data_fails_in_plain_words(api, builtin_templates, duck_source, django_capture_on_commit_callbacks):
    run = _launch_and_run(
        api,
        "binary-lr",
        duck_source,
        django_capture_on_commit_callbacks,
        params={"sample": {"filters": [{"column": "clicked", "op": "=", "value": 1}]}},
    )
    assert run.status == Status.FAILED
    assert "one class" in run.error and "clicked" in run.error
    assert run.artifact_id is None
    assert run.events.last().level == "error"


def test_an_unreadable_source_fails_the_run_saying_so(
    api, builtin_templates, duck_source, django_capture_on_commit_callbacks, tmp_path
):
    with django_capture_on_commit_callbacks(execute=True):
        run_id = _launch(api, "binary-lr", duck_source).json()["id"]
    duck_source.options = {"path": str(tmp_path / "gone.duckdb")}
    duck_source.save()
    run_queued_jobs()
    run = TrainingRun.objects.get(pk=run_id)
    assert run.status == Status.FAILED
    assert run.error.startswith("The sample could not be read from the data source")


def test_a_second_delivery_of_the_job_does_nothing(
    api, builtin_templates, duck_source, django_capture_on_commit_callbacks
):
    run = _launch_and_run(api, "binary-lr", duck_source, django_capture_on_commit_callbacks)
    events, artifact = run.events.count(), run.artifact_id
    run_training(run.pk)  # RQ delivers at least once
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED and run.events.count() == events and run.artifact_id == artifact


@pytest.mark.django_db(transaction=True)  # the command commits, then runs the job it enqueued
def test_train_command_sets_parameters_and_waits(builtin_templates, duck_source, user):
    out = io.StringIO()
    call_command(
        "train",
        "binary-lr",
        "--set",
        "sample.label=clicked",
        "--set",
        "train.maxIter=200",
        "--user",
        user.username,
        "--wait",
        stdout=out,
    )
    run = TrainingRun.objects.get()
    assert run.status == Status.SUCCEEDED and run.params["train"]["maxIter"] == 200
    assert f"Run {run.pk} succeeded" in out.getvalue() and "auc=" in out.getvalue()


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("train.maxIter=many", "train.maxIter: Expected a whole number."),
        ("train.max_iter=5", "train has no parameter 'max_iter'"),
        ("trian.maxIter=5", "no node 'trian'"),
        ("maxIter", "expected node.param=value"),
        ("sample.label=age", "sample.label: Locked by the template author"),
        ("train.maxIter=0", "train.maxIter: Must be at least 1."),
    ],
)
def test_train_command_names_the_bad_parameter(builtin_templates, duck_source, user, assignment, message):
    with pytest.raises(CommandError, match=message):
        call_command("train", "binary-lr", "--set", assignment, "--user", user.username)
    assert not TrainingRun.objects.exists()


def test_local_runs_use_the_train_threads_setting(
    api, builtin_templates, duck_source, django_capture_on_commit_callbacks, settings
):
    settings.MLAB_TRAIN_THREADS = 1
    params = {"train": {"treeCount": 5}}
    run = _launch_and_run(api, "binary-gbdt", duck_source, django_capture_on_commit_callbacks, params=params)
    assert run.status == Status.SUCCEEDED, run.error
    assert run.report["threads"] == 1
