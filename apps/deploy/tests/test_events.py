"""The events door (POST /api/v1/scenes/{scene}/events/) and the aggregation of the stream it feeds, in process.

Crashes with real processes (a worker killed mid-aggregation, Redis restarted, the server down) are in
tests/test_events_faults.py.
"""

from __future__ import annotations

import json

import pytest
from django.db import DatabaseError

from apps.deploy.models import (
    EventBatch,
    EventStreamState,
    ExposureDay,
    OutcomeDay,
    PendingOutcome,
    UnattributedOutcomeDay,
    UnitExposure,
)
from apps.deploy.services import attribution, client_token_create, deployment_create, events_aggregate, scene_create
from apps.deploy.services.event_stream import GROUP, SceneStream
from conftest import token_client
from mlab_client import contract
from mlabsite.roles import BUSINESS_DEVELOPERS, role_group

from .events_support import DAY, T0, exposure, outcome, post, xadd
from .test_client_apis import as_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def ab(scene, versions, user):
    """Revision 1 of the scene: v1 and v2 at 50/50."""
    return deployment_create(
        scene=scene, splits=[{"version": 1, "weight": 50}, {"version": 2, "weight": 50}], user=user
    )


@pytest.fixture
def app(client_token):
    return as_client(client_token[1])


def stream(redis, scene) -> list:
    return redis.xrange(contract.events_stream_key(scene.name))


# -- the door ------------------------------------------------------------------------------------------------------


def test_a_client_token_of_the_scene_sends_a_batch_into_the_stream_in_the_sdk_format(app, scene, ab, redis):
    events = [exposure("u1", 1), outcome("u1")]
    answer = post(app, scene, events, batch_id="batch-0001")
    assert answer.status_code == 202, answer.content
    assert answer.json() == {"batch": "batch-0001", "events": 2}
    [(_, fields)] = stream(redis, scene)
    assert fields[b"batch"] == b"batch-0001" and fields[b"format"] == contract.EVENTS_FORMAT_VERSION.encode()
    assert json.loads(fields[b"events"]) == events


def test_who_may_send_events(scene, ab, user, other_user, anon_api, api):
    other = scene_create(name="other-scene", user=user)
    _, foreign_key = client_token_create(name="foreign", scenes=[other], user=user)
    events = [exposure("u1", 1)]
    assert post(anon_api, scene, events).status_code == 401
    refused = post(as_client(foreign_key), scene, events)
    assert refused.status_code == 403 and "cannot send events to scene 'seller-union-ctr'" in refused.json()["detail"]
    assert post(as_client("mlc_not-a-token"), scene, events).status_code == 401
    assert post(token_client(other_user), scene, events).status_code == 403  # no role: may not view scenes
    other_user.groups.add(role_group(BUSINESS_DEVELOPERS))
    assert post(token_client(other_user), scene, events).status_code == 404  # not an owner: no such scene
    assert post(api, scene, events).status_code == 202  # an owner may
    assert anon_api.get(f"/api/v1/scenes/{scene.name}/events/").status_code in (401, 405)


def test_a_bad_event_is_named_by_its_index_and_field_and_nothing_is_kept(app, scene, ab, redis):
    events = [exposure("u1", 1), {**exposure("u2", 1), "unit_id": ""}, {**outcome("u3"), "value": "lots"}]
    answer = post(app, scene, events)
    assert answer.status_code == 400
    body = answer.json()
    assert set(body["events"]) == {"1", "2"}
    assert "unit_id" in body["events"]["1"] and "value" in body["events"]["2"]
    bad_id = post(app, scene, events, batch_id="no").json()
    assert bad_id == {"batch": [f"an id matching {contract.BATCH_ID_PATTERN}"], "events": body["events"]}
    not_json = app.post(f"/api/v1/scenes/{scene.name}/events/", b"{nope", content_type="application/json")
    assert not_json.status_code == 400 and not_json.json()["detail"].startswith("JSON parse error - ")
    assert stream(redis, scene) == []


def test_413_from_the_declared_size_before_the_body_is_read_and_from_the_event_count(app, scene, ab, redis, settings):
    huge = b"x" * (contract.MAX_BATCH_BYTES + 1)  # not even JSON: refused on its declared length alone
    answer = app.post(f"/api/v1/scenes/{scene.name}/events/", huge, content_type="application/json")
    assert answer.status_code == 413 and "bytes" in answer.json()["events"][0]
    too_many = [exposure(f"u{i}", 1) for i in range(contract.MAX_BATCH_EVENTS + 1)]
    assert post(app, scene, too_many).status_code == 413
    settings.MLAB_EVENTS_MAX_BATCH_EVENTS = 10  # a server may take fewer
    assert post(app, scene, too_many[:11]).status_code == 413
    assert post(app, scene, too_many[:10]).status_code == 202
    assert len(stream(redis, scene)) == 1


def test_503_with_retry_after_once_the_backlog_is_at_its_limit(app, scene, ab, redis, settings):
    settings.MLAB_EVENTS_STREAM_LIMIT = 2
    assert [post(app, scene, [exposure(f"u{i}", 1)]).status_code for i in range(2)] == [202, 202]
    full = post(app, scene, [exposure("u9", 1)])
    assert full.status_code == 503 and full["Retry-After"] == "2"
    assert len(stream(redis, scene)) == 2
    events_aggregate(scene_id=scene.pk)  # counted entries leave the stream: room again
    assert stream(redis, scene) == []
    assert post(app, scene, [exposure("u9", 1)]).status_code == 202


def test_appends_ask_for_one_aggregation_job_until_it_runs(app, scene, ab, run_jobs):
    import django_rq

    queue = django_rq.get_queue("default")
    for i in range(3):
        post(app, scene, [exposure(f"u{i}", 1)])
    jobs = [job for job in queue.get_jobs() if job.func_name == "apps.deploy.jobs.events_aggregate_job"]
    assert len(jobs) == 1 and list(jobs[0].args) == [scene.pk]
    run_jobs()
    assert EventStreamState.objects.get(scene=scene).exposures == 3
    post(app, scene, [exposure("u9", 1)])
    assert len([job for job in queue.get_jobs() if job.func_name.endswith("events_aggregate_job")]) == 1


# -- counting ------------------------------------------------------------------------------------------------------


def test_a_batch_sent_twice_or_added_twice_counts_once(app, scene, ab, redis):
    events = [exposure("u1", 1), exposure("u2", 2), outcome("u1")]
    assert post(app, scene, events, batch_id="same-batch").status_code == 202
    assert post(app, scene, events, batch_id="same-batch").status_code == 202  # a retry whose 202 was lost
    xadd(redis, scene, events, batch_id="same-batch")  # the SDK's Redis mode, its reply lost, added it again
    run = events_aggregate(scene_id=scene.pk)
    assert (run.entries, run.batches, run.duplicates, run.exposures, run.outcomes) == (3, 1, 2, 2, 1)
    assert EventBatch.objects.filter(scene=scene).count() == 1
    assert sum(ExposureDay.objects.filter(scene=scene).values_list("exposures", flat=True)) == 2
    assert list(OutcomeDay.objects.filter(scene=scene).values_list("version", "outcomes", "converted")) == [(1, 1, 1)]
    state = EventStreamState.objects.get(scene=scene)
    assert (state.batches, state.duplicate_batches, state.exposures, state.outcomes) == (1, 2, 2, 1)
    assert stream(redis, scene) == []  # acknowledged and deleted
    again = events_aggregate(scene_id=scene.pk)
    assert again.entries == 0


def test_an_exposure_is_counted_each_time_but_a_unit_once(app, scene, ab, redis):
    post(app, scene, [exposure("u1", 1, score=0.9), exposure("u1", 1, ts=T0 + 5, score=0.1)])  # two processes
    post(app, scene, [exposure("u1", 1, ts=T0 + DAY)])  # the next day
    events_aggregate(scene_id=scene.pk)
    days = list(ExposureDay.objects.filter(scene=scene).order_by("day").values_list("exposures", "units"))
    assert days == [(2, 1), (1, 0)]
    unit = UnitExposure.objects.get(scene=scene)
    assert (unit.version, unit.first_ts, unit.score) == (1, T0, 0.9)  # the first counted keeps the unit


def _apart(scene) -> dict:
    totals: dict[str, int] = {}
    for reason, count in UnattributedOutcomeDay.objects.filter(scene=scene).values_list("reason", "count"):
        totals[reason] = totals.get(reason, 0) + count
    return {reason: count for reason, count in totals.items() if count}


def test_outcomes_are_attributed_within_the_window_and_counted_apart_otherwise(app, scene, ab, redis):
    scene.attribution_window = 3600
    scene.save()
    post(app, scene, [exposure(f"u{i}", 1) for i in range(5)])
    post(
        app,
        scene,
        [
            outcome("u0", ts=T0 + 3599),  # inside
            outcome("u1", ts=T0 - 30),  # a little before (clocks differ): inside
            outcome("u2", ts=T0 - 3600),  # before the exposure
            outcome("u3", ts=T0 + 3601),  # after the window
            outcome("u4", revision=None),  # the client had no config
            outcome("u4", revision=2),  # no exposure in that revision
            outcome("nobody"),  # no exposure at all (yet)
        ],
    )
    events_aggregate(scene_id=scene.pk)
    assert OutcomeDay.objects.get(scene=scene, version=1).converted == 2
    assert _apart(scene) == {"before_exposure": 1, "late": 1, "no_revision": 1, "no_exposure": 2}
    assert PendingOutcome.objects.filter(scene=scene).count() == 2
    # the exposure of "nobody" arrives later (another process): its outcome is attributed after all
    post(app, scene, [exposure("nobody", 2, ts=T0 + 30)])
    events_aggregate(scene_id=scene.pk)
    assert OutcomeDay.objects.get(scene=scene, version=2).converted == 1
    assert _apart(scene) == {"before_exposure": 1, "late": 1, "no_revision": 1, "no_exposure": 1}
    assert PendingOutcome.objects.filter(scene=scene).count() == 1


def test_means_keep_each_units_total_squared(app, scene, ab):
    post(app, scene, [exposure("a", 1), exposure("b", 1), exposure("c", 1)])
    post(
        app,
        scene,
        [
            outcome("a", value=2.0, metric="revenue"),
            outcome("a", value=3.0, metric="revenue"),
            outcome("b", value=1.5, metric="revenue"),
        ],
    )
    events_aggregate(scene_id=scene.pk)
    row = OutcomeDay.objects.get(scene=scene, metric="revenue")
    assert (row.outcomes, row.converted, row.value_sum, row.value_sumsq) == (3, 2, 6.5, 25.0 + 2.25)
    assert row.not_binary == 3


def test_an_entry_breaking_the_contract_is_counted_as_invalid_and_blocks_nothing(scene, ab, redis):
    key = contract.events_stream_key(scene.name)
    redis.xadd(key, {"batch": "bad-json-1", "format": "1", "events": "{not json"})
    redis.xadd(key, {"batch": "future-fmt", "format": "9", "events": "[{}, {}]"})
    xadd(redis, scene, [exposure("u1", 1), {**exposure("u2", 1), "version": 0}], batch_id="half-good")
    run = events_aggregate(scene_id=scene.pk)
    assert (run.entries, run.batches, run.exposures, run.invalid) == (3, 1, 1, 4)
    assert EventStreamState.objects.get(scene=scene).invalid_events == 4
    assert stream(redis, scene) == []


def test_nothing_is_acknowledged_before_the_commit_and_a_crash_after_it_counts_nothing_twice(
    app, scene, ab, redis, monkeypatch
):
    for i in range(3):
        post(app, scene, [exposure(f"u{i}", 1), outcome(f"u{i}")])

    def fail(*args, **kwargs):
        raise DatabaseError("the database went away mid-transaction")

    with monkeypatch.context() as patched:
        patched.setattr(attribution._Tally, "save", fail)
        with pytest.raises(DatabaseError):
            events_aggregate(scene_id=scene.pk)
    assert EventBatch.objects.count() == 0 and ExposureDay.objects.count() == 0
    assert redis.xpending(contract.events_stream_key(scene.name), GROUP)["pending"] == 3  # still ours to redo

    with monkeypatch.context() as patched:  # now the crash comes after the commit, before the XACK
        patched.setattr(SceneStream, "settle", lambda self, ids: (_ for _ in ()).throw(ConnectionError("killed")))
        with pytest.raises(ConnectionError):
            events_aggregate(scene_id=scene.pk, claim_idle=0)
    assert EventBatch.objects.count() == 3  # committed, not acknowledged
    assert redis.xpending(contract.events_stream_key(scene.name), GROUP)["pending"] == 3

    run = events_aggregate(scene_id=scene.pk, claim_idle=0)  # the next run claims what the dead one held
    assert (run.claimed, run.duplicates, run.batches) == (3, 3, 0)
    assert EventStreamState.objects.get(scene=scene).exposures == 3
    assert sum(ExposureDay.objects.values_list("units", flat=True)) == 3
    assert sum(OutcomeDay.objects.values_list("outcomes", flat=True)) == 3
    assert stream(redis, scene) == []


def test_a_batch_that_cannot_be_counted_goes_to_the_dead_letter_stream(app, scene, ab, redis, monkeypatch):
    post(app, scene, [exposure("u1", 1)], batch_id="good-batch-1")
    post(app, scene, [exposure("poison", 1)], batch_id="poison-batch")
    post(app, scene, [exposure("u2", 1)], batch_id="good-batch-2")
    original = attribution._Tally._exposure

    def choke(self, event):
        if event["unit_id"] == "poison":
            raise ValueError("a bug meets an event")
        return original(self, event)

    monkeypatch.setattr(attribution._Tally, "_exposure", choke)
    run = events_aggregate(scene_id=scene.pk)
    assert (run.batches, run.dead) == (2, 1)
    [(_, dead)] = redis.xrange(contract.events_stream_key(scene.name) + ":dead")
    assert dead[b"batch"] == b"poison-batch" and b"a bug meets an event" in dead[b"error"]
    assert stream(redis, scene) == []


def test_sketches_live_in_the_database_and_survive_a_redis_flush(app, scene, ab, redis):
    post(app, scene, [exposure(f"u{i}", 1) for i in range(100)])
    events_aggregate(scene_id=scene.pk)
    redis.flushdb()  # Redis restarted without persistence: the stream and the group are gone, not the sketches
    post(app, scene, [exposure(f"u{i}", 1) for i in range(50, 150)])
    events_aggregate(scene_id=scene.pk)
    from apps.deploy.abtest.sketch import sketch_union_count

    [row] = ExposureDay.objects.filter(scene=scene)
    assert row.units == 150 and row.exposures == 200
    assert abs(sketch_union_count(redis, [bytes(row.sketch)]) - 150) <= 3


def test_a_run_out_of_time_asks_for_another(app, scene, ab):
    import django_rq

    post(app, scene, [exposure("u1", 1)])
    django_rq.get_queue("default").empty()
    run = events_aggregate(scene_id=scene.pk, budget=0)
    assert (run.entries, run.waiting, run.requested_again) == (0, 1, True)
    jobs = [job for job in django_rq.get_queue("default").get_jobs() if job.func_name.endswith("events_aggregate_job")]
    assert len(jobs) == 1
