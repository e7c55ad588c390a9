"""Services: scenes, version registration, deployments and rollback, client tokens."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.deploy.models import ClientToken, ConfigEntry, Deployment, ModelVersion
from apps.deploy.services import (
    client_token_create,
    client_token_digest,
    deployment_create,
    deployment_rollback,
    model_version_register,
    model_version_register_or_get,
    scene_create,
)
from apps.training.models import TrainingRun

from .onnx_models import SIGNATURE, binary_model

pytestmark = pytest.mark.django_db


def test_scene_create_makes_the_creator_an_owner_with_a_salt_and_an_empty_config(user, other_user):
    scene = scene_create(name="ctr", owners=[other_user], user=user)
    assert set(scene.owners.all()) == {user, other_user}
    assert len(scene.salt) == 16
    entry = ConfigEntry.objects.get(scene=scene)
    assert (entry.revision, entry.fence, entry.content) == (0, 0, {})
    with pytest.raises(ValidationError) as exc:
        scene_create(name="ctr", user=user)
    assert "name" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        scene_create(name="not a slug!", user=user)
    assert "name" in exc.value.message_dict


def test_register_numbers_versions_and_reads_the_signature_from_the_model(scene, make_run, user):
    first = model_version_register(run=make_run(seed=1), scene=scene, user=user)
    second_run = make_run(seed=2, metrics={"auc": 0.91})
    second = model_version_register(run=second_run, scene=scene, user=user)
    assert (first.version, second.version) == (1, 2)
    assert second.signature == SIGNATURE
    assert second.metrics == {"auc": 0.91}
    assert second.sha256 == second_run.artifact.sha256 and second.size == len(binary_model(2).onnx_bytes)
    assert (second.format, second.created_by) == ("onnx", user)


def test_registering_the_same_run_twice_returns_the_existing_version(scene, make_run, user):
    run = make_run()
    version, created = model_version_register_or_get(run=run, scene=scene, user=user)
    again, created_again = model_version_register_or_get(run=run, scene=scene, user=user)
    assert (created, created_again) == (True, False)
    assert again.pk == version.pk
    scene.refresh_from_db()
    assert scene.last_version == 1 and ModelVersion.objects.count() == 1


@pytest.mark.parametrize("status", [TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING, TrainingRun.Status.FAILED])
def test_only_a_succeeded_run_can_be_registered(scene, make_run, user, status):
    with pytest.raises(ValidationError) as exc:
        model_version_register(run=make_run(status=status), scene=scene, user=user)
    assert "succeeded" in exc.value.message_dict["run"][0]
    scene.refresh_from_db()
    assert scene.last_version == 0


def test_a_run_whose_artifact_is_not_onnx_is_refused(scene, make_run, user):
    with pytest.raises(ValidationError) as exc:
        model_version_register(run=make_run(data=b"not a model"), scene=scene, user=user)
    assert "not a valid ONNX model" in exc.value.message_dict["run"][0]


def test_version_numbers_are_never_reused(scene, make_run, user):
    model_version_register(run=make_run(seed=1), scene=scene, user=user)
    with pytest.raises(ValidationError):
        model_version_register(run=make_run(data=b"junk"), scene=scene, user=user)
    assert model_version_register(run=make_run(seed=3), scene=scene, user=user).version == 2


@pytest.fixture
def two_versions(scene, make_run, user):
    return [model_version_register(run=make_run(seed=seed), scene=scene, user=user) for seed in (1, 2)]


def test_deployment_create_numbers_revisions_and_keeps_what_was_asked(scene, two_versions, user):
    first = deployment_create(scene=scene, splits=[{"version": 1, "weight": 100}], user=user, comment="v1 live")
    second = deployment_create(
        scene=scene,
        splits=[{"version": 1, "weight": 90}, {"version": 2, "weight": 10}],
        overrides={"user-42": 2},
        user=user,
    )
    assert (first.revision, second.revision) == (1, 2)
    assert second.splits == [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]
    assert second.overrides == {"user-42": 2} and second.author == user and first.comment == "v1 live"


@pytest.mark.parametrize(
    ("splits", "overrides", "field", "message"),
    [
        ([], None, "splits", "at least one version"),
        (None, None, "splits", "at least one version"),
        (
            [{"version": 1, "weight": 90.5}, {"version": 2, "weight": 9.5}],
            None,
            "splits",
            "splits[0].weight: must be a whole",
        ),
        ([{"version": 1, "weight": "90"}, {"version": 2, "weight": 10}], None, "splits", "splits[0].weight"),
        ([{"version": 1, "weight": True}], None, "splits", "splits[0].weight"),
        ([{"version": 1, "weight": 80}, {"version": 2, "weight": 10}], None, "splits", "sum to 100; they sum to 90"),
        (
            [{"version": 1, "weight": 110}, {"version": 2, "weight": -10}],
            None,
            "splits",
            "splits[1].weight: must not be negative",
        ),
        ([{"version": 7, "weight": 100}], None, "splits", "splits[0].version: version 7 is not registered"),
        (
            [{"version": 1, "weight": 50}, {"version": 1, "weight": 50}],
            None,
            "splits",
            "splits[1].version: version 1 is repeated",
        ),
        ([{"version": 1}], None, "splits", 'expected {"version"'),
        ([{"version": 1, "weight": 100}], {"u1": 9}, "overrides", "version 9 is not registered"),
        ([{"version": 1, "weight": 100}], {"u1": "2"}, "overrides", "must be a version number"),
        ([{"version": 1, "weight": 100}], ["u1"], "overrides", "Expected an object"),
        ([{"version": 1, "weight": 100}], {"": 1}, "overrides", "non-empty text"),
    ],
)
def test_bad_splits_and_overrides_are_refused_naming_the_field(
    scene, two_versions, user, splits, overrides, field, message
):
    with pytest.raises(ValidationError) as exc:
        deployment_create(scene=scene, splits=splits, overrides=overrides, user=user)
    assert message in " ".join(exc.value.message_dict[field])
    scene.refresh_from_db()
    assert scene.last_revision == 0 and not Deployment.objects.exists()


def test_a_zero_weight_is_allowed_when_the_rest_sums_to_100(scene, two_versions, user):
    deployment = deployment_create(
        scene=scene, splits=[{"version": 1, "weight": 100}, {"version": 2, "weight": 0}], user=user
    )
    assert deployment.revision == 1


def test_rollback_copies_an_earlier_revision_into_a_new_one(scene, two_versions, user, other_user):
    deployment_create(scene=scene, splits=[{"version": 1, "weight": 100}], overrides={"u": 2}, user=user)
    deployment_create(scene=scene, splits=[{"version": 2, "weight": 100}], user=user)
    rollback = deployment_rollback(scene=scene, revision=1, user=other_user)
    assert rollback.revision == 3 and rollback.rollback_of == 1
    assert rollback.splits == [{"version": 1, "weight": 100}] and rollback.overrides == {"u": 2}
    assert rollback.author == other_user and rollback.comment == "Rollback to revision 1"
    with pytest.raises(Deployment.DoesNotExist, match="no revision 9"):
        deployment_rollback(scene=scene, revision=9, user=user)


def test_client_tokens_store_only_a_digest(scene, user):
    token, key = client_token_create(name="ads", scenes=[scene], user=user)
    assert key.startswith("mlc_") and len(key) > 40
    stored = ClientToken.objects.get(pk=token.pk)
    assert stored.key == client_token_digest(key) and key not in (stored.key, stored.hint)
    assert list(stored.scenes.all()) == [scene]
    with pytest.raises(ValidationError) as exc:
        client_token_create(name="none", scenes=[], user=user)
    assert "scenes" in exc.value.message_dict
