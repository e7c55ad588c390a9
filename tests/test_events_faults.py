"""A/B events under faults, with real processes stopped by pid: the server down while a client keeps predicting,
an RQ worker killed with SIGKILL in the middle of an aggregation, Redis restarted, a burst of 1,000,000 events;
and the SDK's two paths (HTTP and Redis) meeting in one stream."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid

import psutil
import pytest
import redis as redis_lib
import requests
from django.conf import settings
from django_redis import get_redis_connection

from apps.deploy.abtest.sketch import sketch_union_count
from apps.deploy.models import EventBatch, EventStreamState, ExposureDay, OutcomeDay
from apps.deploy.services import (
    client_token_create,
    deployment_create,
    events_aggregate,
    events_aggregation_request,
    model_version_register,
    scene_create,
    scene_publish,
)
from mlab_client import ModelClient, contract
from tests.factories import TrainingRunFactory
from tests.live import RedisServer, Uvicorn, rq_worker, stop

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROW = {"age": 35.0, "price": 20.0, "city": "north"}


class EventScene:
    """A scene with v1 and v2 (real models) at 50/50, published, and a client token."""

    def __init__(self, user) -> None:
        self.scene = scene_create(name=f"events-{uuid.uuid4().hex[:8]}", user=user)
        for seed in (11, 12):
            model_version_register(run=TrainingRunFactory(owner=user, seed=seed), scene=self.scene, user=user)
        deployment_create(
            scene=self.scene, splits=[{"version": 1, "weight": 50}, {"version": 2, "weight": 50}], user=user
        )
        scene_publish(scene_id=self.scene.pk)
        _, self.token = client_token_create(name="app", scenes=[self.scene], user=user)
        self.key = contract.events_stream_key(self.scene.name)

    def client(self, base_url: str, **options) -> ModelClient:
        options = {"wait": 5, "retry_base": 0.1, "retry_cap": 0.5, "event_interval": 0.2, **options}
        return ModelClient(base_url, scene=self.scene.name, token=self.token, **options)

    def counted(self) -> EventStreamState:
        return EventStreamState.objects.get(scene=self.scene)


@pytest.fixture
def events_scene(user, builtin_templates) -> EventScene:
    return EventScene(user)


def _serve(client: ModelClient, prefix: str, units: int) -> None:
    for i in range(units):
        unit = f"{prefix}{i}"
        client.predict(ROW, unit_id=unit)
        client.record_outcome(unit, value=float(i % 3 == 0), metric="click")


def _wait(condition, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def test_server_down_the_client_buffers_and_the_server_counts_what_was_sent(events_scene, tmp_path):
    server = Uvicorn(tmp_path / "uvicorn.log")
    try:
        with events_scene.client(server.base, event_buffer=3000) as client:
            assert client.wait_for_revision(1, timeout=30)
            _serve(client, "before-", 1000)
            assert client.flush(timeout=30)
            server.kill()  # a crash: connections cut, nothing answers for a while
            outage = time.monotonic()
            for part in range(4):  # the application keeps serving during the outage (recording into the buffer)
                _serve(client, f"during-{part}-", 1000)
                time.sleep(2)
            assert client.counters.events.buffered > 0 and client.counters.events.retries > 0
            assert time.monotonic() - outage >= 8
            server.start()
            assert client.flush(timeout=60), client.counters.events
            counters = client.counters.events
    finally:
        server.stop()
    assert counters.dropped.get("overflow", 0) > 0  # 8,000 events recorded into a buffer of 3,000
    assert counters.exposures + counters.outcomes == counters.sent + counters.dropped_total
    events_aggregate(scene_id=events_scene.scene.pk)
    state = events_scene.counted()
    assert state.exposures + state.outcomes == counters.sent  # what was sent, less what the counter says dropped
    assert state.batches == counters.batches and state.duplicate_batches >= 0
    assert EventBatch.objects.filter(scene=events_scene.scene).count() == counters.batches


def _fill(redis, key: str, batches: int, per_batch: int, duplicates: int) -> tuple[int, int, set[str]]:
    """Add ``batches`` SDK-format entries (half exposures, half their outcomes), the first ``duplicates`` ids
    added twice. Returns (exposures, outcomes, batch ids)."""
    pipe = redis.pipeline(transaction=False)
    ids, exposures, outcomes = [], 0, 0
    ts = time.time()
    for b in range(batches):
        batch_id = f"batch-{b:06d}"
        units = [f"k{b}-{i}" for i in range(per_batch // 2)]
        events = [
            {"type": "exposure", "unit_id": u, "revision": 1, "version": 1 + i % 2, "score": (i % 100) / 100, "ts": ts}
            for i, u in enumerate(units)
        ] + [
            {"type": "outcome", "unit_id": u, "revision": 1, "version": None, "metric": "click", "value": 1.0, "ts": ts}
            for u in units[::2]
        ]
        exposures += len(units)
        outcomes += len(units[::2])
        fields = {"batch": batch_id, "format": contract.EVENTS_FORMAT_VERSION, "events": json.dumps(events)}
        pipe.xadd(key, fields)
        if b < duplicates:
            pipe.xadd(key, fields)  # a retried XADD whose reply was lost
        ids.append(batch_id)
    pipe.execute()
    return exposures, outcomes, set(ids)


def test_a_worker_killed_mid_aggregation_loses_nothing_and_counts_nothing_twice(events_scene, tmp_path, redis):
    batches = 240
    exposures, outcomes, ids = _fill(redis, events_scene.key, batches, per_batch=600, duplicates=10)
    first = rq_worker(tmp_path / "worker-1.log", MLAB_EVENTS_AGGREGATE_SECONDS="600")
    second = None
    try:
        assert events_aggregation_request(events_scene.scene.pk)
        state = EventStreamState.objects.filter(scene=events_scene.scene)
        _wait(
            lambda: (state.values_list("batches", flat=True).first() or 0) >= batches // 5, 180, "a fifth counted", 0.02
        )
        horses = psutil.Process(first.pid).children(recursive=True)
        for process in horses:  # the work horse doing the aggregation, then its worker: kill -9, no cleanup
            os.kill(process.pid, signal.SIGKILL)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        counted_at_kill = state.values_list("batches", flat=True).first()
        assert horses and 0 < counted_at_kill < batches, counted_at_kill
        pending = redis.xpending(events_scene.key, "mlab-aggregation")["pending"]
        # A new worker; its maintenance sweep finds the entries the dead one held (and the rest) and has them
        # counted, claiming the dead consumer's once they are idle long enough.
        second = rq_worker(tmp_path / "worker-2.log", MLAB_WORKER_MAINTENANCE_SECONDS="2")
        _wait(lambda: redis.xlen(events_scene.key) == 0, 240, "the stream to be drained", 0.5)
    finally:
        for process in (first, second):
            if process is not None:
                stop(process)
    final = state.get()
    assert final.batches == batches and EventBatch.objects.filter(scene=events_scene.scene).count() == batches
    assert set(EventBatch.objects.filter(scene=events_scene.scene).values_list("batch_id", flat=True)) == ids
    assert (final.exposures, final.outcomes) == (exposures, outcomes)
    assert final.duplicate_batches >= 10
    assert sum(ExposureDay.objects.filter(scene=events_scene.scene).values_list("units", flat=True)) == exposures
    assert sum(OutcomeDay.objects.filter(scene=events_scene.scene).values_list("converted", flat=True)) == outcomes
    print(f"killed with {counted_at_kill}/{batches} batches counted and {pending} entries pending")


def test_redis_restarted_loses_at_most_the_events_in_flight_and_the_sdk_counts_exactly(events_scene, tmp_path):
    private = RedisServer()
    server = Uvicorn(tmp_path / "uvicorn.log", REDIS_URL=private.url)
    stream = redis_lib.Redis.from_url(private.url)

    def aggregate():
        return events_aggregate(scene_id=events_scene.scene.pk, connection=stream)

    try:
        with events_scene.client(server.base) as client:
            assert client.wait_for_revision(1, timeout=30)
            _serve(client, "a-", 500)
            assert client.flush(timeout=30)
            aggregate()
            assert events_scene.counted().exposures == 500
            _serve(client, "b-", 300)
            assert client.flush(timeout=30)  # accepted (202): in the stream, not counted yet
            in_flight = sum(len(json.loads(fields[b"events"])) for _, fields in stream.xrange(events_scene.key))
            assert in_flight == 600
            private.kill()  # no persistence: the stream goes with it
            _serve(client, "c-", 400)
            assert not client.flush(timeout=2)  # the door answers 503 while Redis is away: the SDK retries
            private = RedisServer(port=private.port)
            assert client.flush(timeout=60), client.counters.events
            counters = client.counters.events
        aggregate()
    finally:
        server.stop()
        private.kill()
    assert counters.dropped_total == 0 and counters.sent == 2400 and counters.retries > 0
    state = events_scene.counted()
    assert state.exposures + state.outcomes == counters.sent - in_flight  # lost: exactly the events in flight
    rows = ExposureDay.objects.filter(scene=events_scene.scene)
    assert sum(row.units for row in rows) == 900
    # any Redis computes with sketches: the test's own here
    estimate = sketch_union_count(get_redis_connection("default"), [bytes(row.sketch) for row in rows])
    assert abs(estimate - 900) <= 27  # the sketches were in the database: the restart lost none of them


def test_http_and_redis_clients_meet_in_one_stream(events_scene, tmp_path):
    server = Uvicorn(tmp_path / "uvicorn.log")
    try:
        with (
            events_scene.client(server.base) as over_http,
            events_scene.client(server.base, redis_url=settings.REDIS_URL) as over_redis,
        ):
            assert over_http.wait_for_revision(1, timeout=30) and over_redis.wait_for_revision(1, timeout=30)
            _serve(over_http, "h-", 300)
            _serve(over_redis, "r-", 200)
            over_redis.record_outcome("h-1", value=1.0, metric="click")  # an outcome from another process
            assert over_http.flush(timeout=30) and over_redis.flush(timeout=30)
    finally:
        server.stop()
    run = events_aggregate(scene_id=events_scene.scene.pk)
    assert run.exposures == 500 and run.outcomes == 501
    assert sum(OutcomeDay.objects.filter(scene=events_scene.scene).values_list("outcomes", flat=True)) == 501


@pytest.mark.timeout(1200)
def test_a_burst_of_a_million_events_keeps_the_stream_bounded_and_the_aggregation_catches_up(events_scene, tmp_path):
    limit = 200
    server = Uvicorn(tmp_path / "uvicorn.log", MLAB_EVENTS_STREAM_LIMIT=str(limit))
    worker = rq_worker(tmp_path / "worker.log", MLAB_WORKER_MAINTENANCE_SECONDS="5")
    redis = get_redis_connection("default")
    batches, per_batch = 2000, 500  # 250 units a batch: an exposure and an outcome each
    longest, refused = [0], [0]
    done = threading.Event()

    def watch():
        while not done.is_set():
            longest[0] = max(longest[0], redis.xlen(events_scene.key))
            time.sleep(0.01)

    def send(worker_index: int, workers: int):
        session = requests.Session()
        headers = {"Authorization": f"Token {events_scene.token}", "Content-Type": "application/json"}
        url = f"{server.base}/api/v1/scenes/{events_scene.scene.name}/events/"
        ts = time.time()
        for b in range(worker_index, batches, workers):
            units = [f"burst-{b}-{i}" for i in range(per_batch // 2)]
            events = [
                {"type": "exposure", "unit_id": u, "revision": 1, "version": 1 + i % 2, "score": 0.5, "ts": ts}
                for i, u in enumerate(units)
            ] + [
                {
                    "type": "outcome",
                    "unit_id": u,
                    "revision": 1,
                    "version": None,
                    "metric": "click",
                    "value": 1,
                    "ts": ts,
                }
                for u in units
            ]
            body = json.dumps({"batch": f"burst-{b:06d}", "events": events})
            while True:
                answer = session.post(url, data=body, headers=headers, timeout=30)
                if answer.status_code == 202:
                    break
                assert answer.status_code == 503, answer.text
                refused[0] += 1
                time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    senders = [threading.Thread(target=send, args=(i, 4)) for i in range(4)]
    try:
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        sent_in = time.monotonic() - started
        state = EventStreamState.objects.filter(scene=events_scene.scene)
        _wait(lambda: (state.values_list("batches", flat=True).first() or 0) == batches, 900, "the aggregation", 0.5)
        caught_up_in = time.monotonic() - started
    finally:
        done.set()
        stop(worker)
        server.stop()
    final = state.get()
    assert final.exposures + final.outcomes == batches * per_batch == 1_000_000
    assert longest[0] <= limit, longest[0]  # bounded: the door refused (503) rather than let it grow
    assert redis.xlen(events_scene.key) == 0
    print(
        f"1,000,000 events sent in {sent_in:.0f}s ({refused[0]} answers 503 while the backlog was full), counted "
        f"{caught_up_in:.0f}s after the start; the stream held at most {longest[0]} batches"
    )
