"""Publication: post_save → on_commit → RQ job → lock, fence, cache, conditional write, history, notify."""

from __future__ import annotations

import json
import logging

import pytest
from django.db import transaction
from redis.exceptions import ConnectionError as RedisConnectionError

from apps.artifacts.storage import artifact_cache_present
from apps.deploy.configs import config_body, config_etag
from apps.deploy.models import ConfigEntry, ConfigRevision
from apps.deploy.notify import channel_prefix
from apps.deploy.services import (
    deployment_create,
    deployment_rollback,
    publication_inline,
    publication_sweep,
    scene_publish,
)
from apps.deploy.services.publication import FENCED, PUBLISHED, SUPERSEDED, UP_TO_DATE
from mlab_client.routing import Router, owners_from_ranges

pytestmark = pytest.mark.django_db


def _deploy(scene, user, weights: dict[int, int], overrides=None):
    splits = [{"version": v, "weight": w} for v, w in weights.items()]
    return deployment_create(scene=scene, splits=splits, overrides=overrides, user=user)


def _owners(scene) -> list:
    return owners_from_ranges(ConfigEntry.objects.get(scene=scene).content["allocation"])


def test_a_committed_deployment_enqueues_one_job_that_publishes_it(
    scene, versions, user, run_jobs, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        deployment = _deploy(scene, user, {1: 90, 2: 10}, overrides={"vip-7": 3})
    assert len(callbacks) == 1
    (job,) = run_jobs()
    assert job.is_finished and job.return_value()["outcome"] == PUBLISHED
    entry = ConfigEntry.objects.get(scene=scene)
    content = entry.content
    assert entry.revision == deployment.revision == content["revision"] == 1
    assert (content["scene"], content["salt"], content["buckets"]) == (scene.name, scene.salt, 10_000)
    assert content["overrides"] == {"vip-7": 3}
    assert [v["version"] for v in content["versions"]] == [1, 2, 3]  # 3 is needed for the override
    assert content["versions"][0] == {
        "version": 1,
        "sha256": versions[0].sha256,
        "size": versions[0].size,
        "format": "onnx",
        "url": f"/api/v1/scenes/{scene.name}/versions/1/artifact/",
    }
    owners = _owners(scene)
    assert (owners.count(1), owners.count(2), owners.count(3)) == (9000, 1000, 0)
    assert entry.etag == config_etag(config_body(content))
    history = ConfigRevision.objects.get(scene=scene)
    assert (history.revision, history.deployment_id, history.content, history.fence) == (
        1,
        deployment.pk,
        content,
        entry.fence,
    )
    assert all(artifact_cache_present(v.artifact) for v in versions)
    assert Router.from_config(content).version_for("vip-7") == 3


def test_inside_publication_inline_the_commit_publishes_and_queues_no_job(
    scene, versions, user, run_jobs, django_capture_on_commit_callbacks
):
    """What mlab_demo and `deploy --publish` do: publish at once, and leave no job for a worker to find done."""
    with publication_inline(), django_capture_on_commit_callbacks(execute=True):
        deployment = _deploy(scene, user, {1: 80, 2: 20})
    assert ConfigEntry.objects.get(scene=scene).revision == deployment.revision
    assert run_jobs() == []
    with django_capture_on_commit_callbacks(execute=True):  # outside the block: queued as before
        _deploy(scene, user, {1: 100})
    (job,) = run_jobs()
    assert job.return_value()["outcome"] == PUBLISHED


def test_publishing_again_is_a_no_op(scene, versions, user):
    _deploy(scene, user, {1: 100})
    assert scene_publish(scene_id=scene.pk).outcome == PUBLISHED
    again = scene_publish(scene_id=scene.pk)
    assert (again.outcome, again.revision, again.published_revision) == (UP_TO_DATE, 1, 1)
    assert ConfigRevision.objects.filter(scene=scene).count() == 1


def test_the_newest_deployment_is_published_and_older_ones_are_skipped(scene, versions, user):
    _deploy(scene, user, {1: 100})
    _deploy(scene, user, {2: 100})
    result = scene_publish(scene_id=scene.pk)
    assert (result.outcome, result.revision) == (PUBLISHED, 2)
    assert list(ConfigRevision.objects.filter(scene=scene).values_list("revision", flat=True)) == [2]
    assert scene_publish(scene_id=scene.pk).outcome == UP_TO_DATE
    assert ConfigEntry.objects.get(scene=scene).revision == 2


def test_changing_the_split_moves_only_the_buckets_that_must_move(scene, versions, user):
    _deploy(scene, user, {1: 100})
    scene_publish(scene_id=scene.pk)
    before = _owners(scene)
    _deploy(scene, user, {1: 90, 2: 10})
    scene_publish(scene_id=scene.pk)
    middle = _owners(scene)
    assert sum(a != b for a, b in zip(before, middle, strict=True)) == 1000
    _deploy(scene, user, {1: 50, 2: 50})
    scene_publish(scene_id=scene.pk)
    after = _owners(scene)
    assert sum(a != b for a, b in zip(middle, after, strict=True)) == 4000
    # version 2 grew, so it kept every bucket it had
    assert all(after[i] == 2 for i, owner in enumerate(middle) if owner == 2)


def test_rollback_is_published_as_a_new_revision_with_the_old_split(scene, versions, user):
    _deploy(scene, user, {1: 90, 2: 10})
    scene_publish(scene_id=scene.pk)
    first = _owners(scene)
    _deploy(scene, user, {2: 100})
    scene_publish(scene_id=scene.pk)
    deployment_rollback(scene=scene, revision=1, user=user)
    result = scene_publish(scene_id=scene.pk)
    assert (result.outcome, result.revision) == (PUBLISHED, 3)
    rolled_back = _owners(scene)
    assert rolled_back.count(1) == 9000 and rolled_back.count(2) == 1000
    # from "all v2", v2 keeps the lowest buckets it can: not necessarily the ones of revision 1
    assert sum(a != b for a, b in zip(first, rolled_back, strict=True)) <= 2 * 9000


def test_a_write_refused_by_a_newer_fence_is_retried_above_it(scene, versions, user):
    _deploy(scene, user, {1: 100})
    calls = []

    def newer_holder_wrote_first(lease):
        calls.append(lease.fence)
        if len(calls) == 1:  # as if a holder with a larger token had written meanwhile (without our revision)
            ConfigEntry.objects.filter(scene=scene).update(fence=lease.fence + 100)

    result = scene_publish(scene_id=scene.pk, on_locked=newer_holder_wrote_first)
    assert result.outcome == PUBLISHED and len(calls) == 2
    assert calls[1] > calls[0] + 100
    assert ConfigEntry.objects.get(scene=scene).fence == calls[1]


def test_a_stale_holder_whose_revision_was_published_meanwhile_gives_up(scene, versions, user):
    _deploy(scene, user, {1: 100})
    outcomes = []

    def published_by_someone_else(lease):
        entry = ConfigEntry.objects.get(scene=scene)
        if not outcomes:
            outcomes.append("bumped")
            ConfigEntry.objects.filter(pk=entry.pk).update(fence=lease.fence + 1, revision=1)

    result = scene_publish(scene_id=scene.pk, on_locked=published_by_someone_else)
    assert (result.outcome, result.published_revision) == (FENCED, 1)
    assert not ConfigRevision.objects.filter(scene=scene).exists()  # we wrote nothing


def test_a_lower_fence_than_ours_but_same_revision_is_superseded(scene, versions, user):
    _deploy(scene, user, {1: 100})

    def already_there(lease):
        ConfigEntry.objects.filter(scene=scene).update(revision=1)

    assert scene_publish(scene_id=scene.pk, on_locked=already_there).outcome == SUPERSEDED


def test_pollers_are_notified_after_the_commit(scene, versions, user, redis):
    pubsub = redis.pubsub()
    db = redis.connection_pool.connection_kwargs.get("db", 0)
    pubsub.subscribe(channel_prefix(db) + scene.name)
    pubsub.get_message(timeout=1)  # the subscription confirmation
    _deploy(scene, user, {1: 100})
    scene_publish(scene_id=scene.pk)
    message = pubsub.get_message(timeout=5)
    pubsub.close()
    body = json.loads(message["data"])
    entry = ConfigEntry.objects.get(scene=scene)
    assert (body["scene"], body["revision"], body["etag"], body["content"]) == (
        scene.name,
        1,
        entry.etag,
        entry.content,
    )


def test_a_post_save_in_a_transaction_that_rolls_back_publishes_nothing(
    scene, versions, user, run_jobs, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                _deploy(scene, user, {1: 100})
                raise RuntimeError("changed my mind")
    assert callbacks == []
    assert run_jobs() == []
    assert ConfigEntry.objects.get(scene=scene).revision == 0


def test_when_redis_refuses_the_job_the_sweep_publishes_later(
    scene, versions, user, run_jobs, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    import django_rq

    def refuse(*args, **kwargs):
        raise RedisConnectionError("Redis is restarting")

    with monkeypatch.context() as patch:
        patch.setattr(django_rq.queues.DjangoRQ, "enqueue", refuse)
        with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True):
            _deploy(scene, user, {1: 100})
    assert "could not enqueue the publication" in caplog.text
    assert run_jobs() == []
    assert publication_sweep() == [scene.pk]
    (job,) = run_jobs()
    assert job.return_value()["outcome"] == PUBLISHED
    assert publication_sweep() == []


def _weights():
    """Splits over versions 1-3 (zero weights left out): two cut points on 0..100."""
    from hypothesis import strategies as st

    def split(cuts):
        low, high = sorted(cuts)
        return {v: w for v, w in zip((1, 2, 3), (low, high - low, 100 - high), strict=True) if w}

    return st.tuples(st.integers(0, 100), st.integers(0, 100)).map(split)


def test_published_allocations_move_exactly_the_change_of_split(scene, versions, user):
    """Along any chain of deployments, each publication moves as many buckets as the split changed (total
    variation distance), computed from the allocation that was published before."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(chain=st.lists(_weights(), min_size=2, max_size=4))
    def check(chain):
        previous_owners, previous_weights = None, None
        for weights in chain:
            _deploy(scene, user, weights)
            scene_publish(scene_id=scene.pk)
            owners = _owners(scene)
            for version in (1, 2, 3):
                assert owners.count(version) == weights.get(version, 0) * 100
            if previous_owners is not None:
                distance = sum(abs(weights.get(v, 0) - previous_weights.get(v, 0)) for v in (1, 2, 3)) // 2
                assert sum(a != b for a, b in zip(previous_owners, owners, strict=True)) == distance * 100
            previous_owners, previous_weights = owners, weights

    check()
