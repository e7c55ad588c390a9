"""mlab_client against a real Mlab server process (uvicorn) with real versions: a server killed and restarted,
Redis for artifacts stopped, tampered bytes in Redis, a publication during a burst of predictions, a restart
with the server down, and stickiness across client processes. Processes are stopped by pid."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter

import pytest
import requests

from apps.artifacts.models import ArtifactChunk
from apps.artifacts.storage import artifact_cache_warm
from apps.deploy.models import ConfigEntry, ConfigRevision, ModelVersion
from apps.deploy.services import (
    client_token_create,
    deployment_create,
    model_version_register,
    scene_create,
    scene_publish,
)
from apps.deploy.tests.onnx_models import binary_model
from mlab_client import Model, ModelClient
from mlab_client.contract import artifact_chunk_key
from mlab_client.routing import Router
from tests.factories import TrainingRunFactory
from tests.live import RedisServer, Uvicorn, free_port, python

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROW = {"age": 35.0, "price": 20.0, "city": "north"}
SEEDS = {1: 11, 2: 12, 3: 13}  # version → the seed of its model


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    """One Mlab server for the module (tests that kill a server start their own)."""
    uvicorn = Uvicorn(tmp_path_factory.mktemp("client-live") / "uvicorn.log")
    yield uvicorn
    uvicorn.stop()


class LiveScene:
    """A scene with versions 1–3 (three real models), a client token, and a way to publish a split."""

    def __init__(self, user, builtin_templates) -> None:
        # A new name per test: the server keeps a short memo of configs by scene name.
        self.scene = scene_create(name=f"client-{uuid.uuid4().hex[:8]}", user=user)
        self.user = user
        for version, seed in SEEDS.items():
            run = TrainingRunFactory(owner=user, seed=seed)
            assert model_version_register(run=run, scene=self.scene, user=user).version == version
        _, self.token = client_token_create(name="app", scenes=[self.scene], user=user)

    def publish(self, weights: dict[int, int]) -> int:
        splits = [{"version": v, "weight": w} for v, w in weights.items()]
        deployment_create(scene=self.scene, splits=splits, user=self.user)
        result = scene_publish(scene_id=self.scene.pk)
        assert result.published_revision == result.revision
        return result.revision

    def version(self, number: int) -> ModelVersion:
        return ModelVersion.objects.select_related("artifact").get(scene=self.scene, version=number)

    def client(self, base_url: str, **options) -> ModelClient:
        options.setdefault("wait", 5)
        options.setdefault("retry_base", 0.1)
        options.setdefault("retry_cap", 0.5)
        return ModelClient(base_url, scene=self.scene.name, token=self.token, **options)


@pytest.fixture
def live(user, builtin_templates) -> LiveScene:
    return LiveScene(user, builtin_templates)


@pytest.fixture(scope="module")
def scores() -> dict[int, float]:
    """The score of ROW under each version's model, computed here by the SDK's model class."""
    return {version: Model(binary_model(seed).onnx_bytes).predict(ROW)[0] for version, seed in SEEDS.items()}


class Burst:
    """Threads predicting in a loop until stopped; every prediction and every exception is kept."""

    def __init__(self, client: ModelClient, threads: int) -> None:
        self.client = client
        self.predictions: list = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, args=(n,), daemon=True) for n in range(threads)]
        for thread in self._threads:
            thread.start()

    def _work(self, number: int) -> None:
        count = 0
        while not self._stop.is_set():
            unit = f"t{number}-u{count % 500}"
            try:
                prediction = self.client.predict(ROW, unit_id=unit)
            except BaseException as exc:  # noqa: BLE001 (every failure is a finding)
                with self._lock:
                    self.errors.append(exc)
                continue
            with self._lock:
                self.predictions.append((unit, prediction))
            count += 1
            if count % 50 == 0:
                time.sleep(0.001)  # let the listener thread and the test run

    def mark(self) -> int:
        with self._lock:
            return len(self.predictions)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


def test_server_killed_while_clients_predict_then_back_with_a_revision_published_meanwhile(live, tmp_path):
    own = Uvicorn(tmp_path / "uvicorn.log")
    first = live.publish({1: 100})
    client = live.client(own.base).start()
    burst = Burst(client, threads=4)
    try:
        time.sleep(0.3)
        own.kill()
        down_from = burst.mark()
        time.sleep(0.5)
        meanwhile = live.publish({1: 50, 2: 50})  # written to the database and Redis while the server is down
        time.sleep(1.0)
        down_to = burst.mark()
        assert client.revision == first and client.counters.refresh_failures >= 1
        own.start()
        assert client.wait_for_revision(meanwhile, timeout=20), client.counters
        back_from = burst.mark()
        time.sleep(0.5)
    finally:
        burst.stop()
        client.close()
        own.stop()
    assert burst.errors == []
    while_down = burst.predictions[down_from:down_to]
    assert len(while_down) > 100 and {p.version for _, p in while_down} == {1}
    assert {p.revision for _, p in while_down} == {first}
    # A thread may have been inside predict() with the old routing when the swap happened and append its
    # answer just after back_from was read: at most one such prediction per thread, all of the old revision.
    after = burst.predictions[back_from:]
    stale = [p for _, p in after if p.revision != meanwhile]
    assert len(stale) <= len(burst._threads) and {p.revision for p in stale} <= {first}
    fresh = [(unit, p) for unit, p in after if p.revision == meanwhile]
    router = Router.from_config(ConfigRevision.objects.get(scene=live.scene, revision=meanwhile).content)
    assert len(fresh) > 100 and all(p.version == router.version_for(unit) for unit, p in fresh)
    assert {p.version for _, p in fresh} == {1, 2}


def test_redis_for_artifacts_stopped_fetches_fall_back_to_http(server, live):
    redis = RedisServer()
    try:
        for number in (1, 2):
            artifact_cache_warm(live.version(number).artifact, connection=redis.client)
        live.publish({1: 100})
        with live.client(server.base, redis_url=redis.url) as client:
            assert client.counters.fetches == {"redis": 1}
            redis.kill()
            revision = live.publish({1: 50, 2: 50})
            assert client.wait_for_revision(revision, timeout=20), client.counters
            counters = client.counters
            assert counters.fetches == {"redis": 1, "http": 1} and counters.redis_fallbacks == 1
            assert {client.predict(ROW, unit_id=f"u{i}").version for i in range(200)} == {1, 2}
    finally:
        redis.kill()


def _flip_first_byte(data: bytes) -> bytes:
    return bytes([data[0] ^ 0xFF]) + data[1:]


def test_tampered_bytes_in_redis_are_rejected_the_old_model_kept_and_the_failure_counted(server, live, redis, scores):
    live.publish({1: 100})
    with live.client(server.base, redis_url=_redis_url()) as client:
        # v2's cached copy is tampered with; the server still has the true bytes (its database).
        two = live.version(2)
        artifact_cache_warm(two.artifact, connection=redis)
        key = artifact_chunk_key(two.sha256, 0)
        redis.set(key, _flip_first_byte(redis.get(key)))
        revision = live.publish({1: 50, 2: 50})
        assert client.wait_for_revision(revision, timeout=20), client.counters
        counters = client.counters
        assert counters.artifact_rejections == 1 and counters.fetches == {"redis": 1, "http": 1}  # v1, then v2
        assert client.model(2).sha256 == two.sha256

        # v3 tampered in Redis and in the database: no good copy anywhere, so the old routing stays.
        three = live.version(3)
        artifact_cache_warm(three.artifact, connection=redis)
        key = artifact_chunk_key(three.sha256, 0)
        good = redis.get(key)
        redis.set(key, _flip_first_byte(good))
        chunk = ArtifactChunk.objects.get(artifact=three.artifact, index=0)
        ArtifactChunk.objects.filter(pk=chunk.pk).update(data=_flip_first_byte(bytes(chunk.data)))
        blocked = live.publish({1: 50, 3: 50})
        deadline = time.monotonic() + 20
        while client.counters.refresh_failures < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        counters = client.counters
        assert counters.refresh_failures >= 2 and counters.artifact_rejections >= 3
        assert client.revision == revision and client.versions == [1, 2]
        served = [client.predict(ROW, unit_id=f"u{i}") for i in range(200)]
        assert {p.version for p in served} == {1, 2} and all(p.score == scores[p.version] for p in served)

        ArtifactChunk.objects.filter(pk=chunk.pk).update(data=chunk.data)  # healed: the client catches up
        redis.set(key, good)
        assert client.wait_for_revision(blocked, timeout=20), client.counters
        assert client.model(3).sha256 == three.sha256


def _redis_url() -> str:
    from django.conf import settings

    return settings.REDIS_URL


def test_a_publish_during_a_burst_from_8_threads_serves_old_or_new_routing_never_a_mix(server, live, scores):
    old = live.publish({1: 70, 2: 30})
    with live.client(server.base) as client:
        burst = Burst(client, threads=8)
        try:
            time.sleep(0.3)
            new = live.publish({2: 40, 3: 60})
            assert client.wait_for_revision(new, timeout=20), client.counters
            time.sleep(0.3)
        finally:
            burst.stop()
    assert burst.errors == []
    routers = {
        revision: Router.from_config(ConfigRevision.objects.get(scene=live.scene, revision=revision).content)
        for revision in (old, new)
    }
    seen = Counter()
    for unit, prediction in burst.predictions:
        assert prediction.version == routers[prediction.revision].version_for(unit), (unit, prediction)
        assert prediction.score == scores[prediction.version]  # scored by the model of the version it names
        seen[prediction.revision] += 1
    assert seen[old] > 100 and seen[new] > 100, seen


CLIENT_PROCESS = """
import json, sys
from mlab_client import ModelClient
client = ModelClient({base!r}, scene={scene!r}, token={token!r}, snapshot_dir={snapshots!r}, wait=1,
                     timeout=2.0, retry_base=0.1, retry_cap=0.5).start()
units = [f"user-{{i}}" for i in range({units})]
print(json.dumps({{
    "status": client.status,
    "revision": client.revision,
    "routes": [client.version_for(u) for u in units],
    "served": [client.predict({row!r}, unit_id=u).version for u in units[:50]],
}}))
client.close()
"""


def _client_process(base: str, live: LiveScene, snapshots, units: int) -> dict:
    script = CLIENT_PROCESS.format(
        base=base, scene=live.scene.name, token=live.token, snapshots=str(snapshots), units=units, row=ROW
    )
    process = python(script, django=False)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_a_restart_with_the_server_down_starts_from_the_snapshot_and_says_so(server, live, tmp_path):
    revision = live.publish({1: 30, 3: 70})
    with live.client(server.base, snapshot_dir=str(tmp_path)) as client:
        expected = [client.version_for(f"user-{i}") for i in range(300)]
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the server is down for this process
    restarted = _client_process(down, live, tmp_path, units=300)
    assert restarted["status"] == "snapshot" and restarted["revision"] == revision
    assert restarted["routes"] == expected and restarted["served"] == expected[:50]


def test_units_stick_to_their_version_across_two_client_processes_and_the_server(server, live, tmp_path, business_user):
    from conftest import token_client

    live.publish({1: 20, 2: 30, 3: 50})
    first = _client_process(server.base, live, tmp_path / "a", units=3000)
    second = _client_process(server.base, live, tmp_path / "b", units=3000)
    assert first["status"] == second["status"] == "live"
    assert first["routes"] == second["routes"] and set(first["routes"]) == {1, 2, 3}
    router = Router.from_config(ConfigEntry.objects.get(scene=live.scene).content)
    assert first["routes"] == [router.version_for(f"user-{i}") for i in range(3000)]
    api = token_client(business_user)
    headers = {"Authorization": api._credentials["HTTP_AUTHORIZATION"]}
    for i in range(0, 3000, 150):  # the server's predict endpoint routes the same way
        answer = requests.post(
            f"{server.base}/api/v1/scenes/{live.scene.name}/predict/",
            json={"unit_id": f"user-{i}", "features": ROW},
            headers=headers,
            timeout=30,
        )
        assert answer.status_code == 200 and answer.json()["version"] == first["routes"][i], answer.text
