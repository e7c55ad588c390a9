"""The management commands: thin doors into the services, with plain errors."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from apps.deploy.models import ConfigEntry, Deployment, ModelVersion, Scene
from apps.deploy.services import client_token_digest
from apps.training.models import TrainingRun

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_register_creates_the_scene_on_request_and_is_idempotent(make_run, user):
    training_run = make_run(seed=5)
    with pytest.raises(CommandError, match="add --create"):
        run("register", str(training_run.pk), "new-scene")
    out = run("register", str(training_run.pk), "new-scene", "--create", "--user", "alice")
    assert "Registered run" in out and "new-scene v1" in out
    assert "Already registered" in run("register", str(training_run.pk), "new-scene")
    scene = Scene.objects.get(name="new-scene")
    assert list(scene.owners.all()) == [user] and ModelVersion.objects.get(scene=scene).created_by == user


def test_register_says_plainly_what_is_wrong(scene, make_run):
    with pytest.raises(CommandError, match="No training run 999"):
        run("register", "999", scene.name)
    failed = make_run(status=TrainingRun.Status.FAILED)
    with pytest.raises(CommandError, match=r"^run: Run \d+ has status failed"):
        run("register", str(failed.pk), scene.name)
    with pytest.raises(CommandError, match="No user named 'zed'"):
        run("register", str(failed.pk), scene.name, "--user", "zed")


def test_register_with_create_leaves_no_empty_scene_when_the_run_is_refused(make_run):
    failed = make_run(status=TrainingRun.Status.FAILED)
    with pytest.raises(CommandError, match=r"^run: Run \d+ has status failed"):
        run("register", str(failed.pk), "never-made", "--create")
    assert not Scene.objects.filter(name="never-made").exists()


def test_deploy_and_rollback_publish_with_publish(scene, versions, user):
    out = run("deploy", scene.name, "1:90", "2:10", "--override", "vip=3", "--comment", "canary", "--publish")
    assert "revision 1: v1 90%, v2 10%" in out and "revision 1." in out
    deployment = Deployment.objects.get(scene=scene, revision=1)
    assert deployment.overrides == {"vip": 3} and deployment.comment == "canary"
    assert ConfigEntry.objects.get(scene=scene).revision == 1
    assert "queued" in run("deploy", scene.name, "2:100")
    out = run("rollback", scene.name, "1", "--publish", "--user", "alice")
    assert "revision 3 rolls back to revision 1" in out
    entry = ConfigEntry.objects.get(scene=scene)
    assert entry.revision == 3 and entry.content["overrides"] == {"vip": 3}
    assert Deployment.objects.get(scene=scene, revision=3).author == user


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["1:90"], "weights must sum to 100"),
        (["1:50", "1:50"], "version 1 is repeated"),
        (["9:100"], "version 9 is not registered"),
        (["1-100"], "VERSION:WEIGHT"),
        (["1:ninety"], "whole numbers"),
        (["1:100", "--override", "vip"], "UNIT=VERSION"),
        (["1:100", "--override", "vip=7"], "overrides"),
    ],
)
def test_deploy_errors_are_plain(scene, versions, args, message):
    with pytest.raises(CommandError, match=message):
        run("deploy", scene.name, *args)
    assert not Deployment.objects.exists()


def test_rollback_to_an_unknown_revision_is_a_plain_error(scene):
    with pytest.raises(CommandError, match="has no revision 4"):
        run("rollback", scene.name, "4")
    with pytest.raises(CommandError, match="No scene named 'nope'"):
        run("rollback", "nope", "1")


def test_publish_now_and_sweep_what_is_behind(scene, versions):
    run("deploy", scene.name, "1:100")  # queued; no worker runs in this test
    assert "Enqueued the publication of 1 scene(s)." in run("publish", "--pending")
    assert f"{scene.name}: published; the config is at revision 1." in run("publish", scene.name)
    assert f"{scene.name}: up-to-date" in run("publish", scene.name)
    assert "Enqueued the publication of 0 scene(s)." in run("publish", "--pending")
    with pytest.raises(CommandError, match="Give a scene name, or --pending"):
        run("publish")


def test_client_token_is_printed_once_and_stored_as_a_digest(scene):
    key = run("client_token", "ads-server", scene.name).splitlines()[-1]
    assert key.startswith("mlc_")
    assert scene.client_tokens.get().key == client_token_digest(key)


def test_deploy_names_the_control_of_the_results(scene, versions):
    call_command("deploy", scene.name, "1:50", "2:50", "--control", "2", stdout=io.StringIO())
    assert Deployment.objects.get(scene=scene).control == 2
    with pytest.raises(CommandError, match="control_version: The control must be one of"):
        call_command("deploy", scene.name, "1:100", "--control", "2", stdout=io.StringIO())
