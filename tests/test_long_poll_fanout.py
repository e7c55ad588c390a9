"""Issue 16: long polls held by the thousand in real uvicorn processes. A publication wakes every worker's polls
through one pub/sub subscription per worker; clients that leave are forgotten with no leak; a listener that
loses Redis catches up when Redis is back, with one read per scene and one lookup per client token."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from django_redis import get_redis_connection

from apps.deploy.models import ConfigEntry
from apps.deploy.services import (
    client_token_create,
    client_token_revoke,
    deployment_create,
    model_version_register,
    scene_create,
    scene_publish,
)
from tests.factories import TrainingRunFactory
from tests.live import HeldPolls, RedisServer, Uvicorn

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CAUGHT_UP = re.compile(
    r"caught up after subscribing: (\d+) scene\(s\) read and (\d+) client token\(s\) re-checked in (\d+) queries; "
    r"(\d+) of (\d+) polls answered \(process (\d+)\)"
)


@pytest.fixture
def scene(user):
    scene = scene_create(name=f"fanout-{uuid.uuid4().hex[:8]}", user=user)
    for seed in (1, 2):
        model_version_register(run=TrainingRunFactory(owner=user, seed=seed), scene=scene, user=user)
    deployment_create(scene=scene, splits=[{"version": 1, "weight": 100}], user=user)
    scene_publish(scene_id=scene.pk)
    return scene


def _publish(scene, user, weight: int) -> int:
    deployment_create(
        scene=scene, splits=[{"version": 1, "weight": weight}, {"version": 2, "weight": 100 - weight}], user=user
    )
    return scene_publish(scene_id=scene.pk).revision


def _hold(server: Uvicorn, scene, key: str, count: int) -> HeldPolls:
    etag = ConfigEntry.objects.get(scene=scene).etag
    return HeldPolls(server.port, f"/api/v1/config/{scene.name}/", f"Token {key}", etag, count)


def _pubsub_connections(db: int) -> int:
    """Connections to the test Redis in pub/sub mode on our database: the listeners."""
    clients = get_redis_connection("default").client_list()
    return sum(1 for client in clients if int(client.get("psub", 0)) > 0 and int(client.get("db", -1)) == db)


def test_a_publication_wakes_the_polls_held_by_every_worker(tmp_path, scene, user):
    _, key = client_token_create(name="app", scenes=[scene], user=user)
    server = Uvicorn(tmp_path / "uvicorn.log", workers=2, MLAB_LOG_LEVEL="DEBUG")
    held: list[HeldPolls] = []
    try:
        # The kernel hands connections to whichever worker accepts first: hold more until both have some.
        total = 0
        while True:
            held.append(_hold(server, scene, key, 100))
            total += 100
            counts = server.wait_for_waiting(total)
            if sum(1 for n in counts.values() if n) == 2 or total >= 1000:
                break
        assert sum(1 for n in counts.values() if n) == 2, counts
        db = get_redis_connection("default").connection_pool.connection_kwargs.get("db", 0) or 0
        deadline = time.monotonic() + 20
        while _pubsub_connections(int(db)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _pubsub_connections(int(db)) == 2  # one subscription per worker, not one per poll

        revision = _publish(scene, user, 30)
        answers = [answer for polls in held for answer in polls.answers(timeout=30)]
        assert len(answers) == total
        assert all(answer is not None and answer[0] == 200 for answer in answers), answers[:3]
        assert {answer[1]["revision"] for answer in answers if answer} == {revision}
        server.wait_for_waiting(0)
    finally:
        for polls in held:
            polls.close()
        server.stop()


def test_ten_thousand_clients_that_leave_while_waiting_leave_nothing_behind(tmp_path, scene, user):
    _, key = client_token_create(name="app", scenes=[scene], user=user)
    server = Uvicorn(tmp_path / "uvicorn.log", MLAB_LOG_LEVEL="DEBUG")
    try:
        rss = []
        for _ in range(20):  # 20 × 500 connect-and-drop cycles
            polls = _hold(server, scene, key, 500)
            server.wait_for_waiting(500)
            polls.close()
            server.wait_for_waiting(0)
            rss.append(server.rss())
        grown = rss[-1] - rss[1]  # after two rounds every path has run once and the heap has its shape
        assert grown < 4 * 2**20, [f"{r / 2**20:.1f}" for r in rss]  # under 450 bytes a cycle, were it a leak
        # and the server still answers a held poll when a publication comes
        polls = _hold(server, scene, key, 10)
        server.wait_for_waiting(10)
        revision = _publish(scene, user, 60)
        assert {(a[0], a[1]["revision"]) for a in polls.answers(timeout=30) if a and a[1]} == {(200, revision)}
    finally:
        server.stop()


def test_after_redis_comes_back_each_worker_catches_up_once_per_scene_and_token(tmp_path, scene, user):
    """1,000 polls held by 2 workers; Redis dies; meanwhile a token is revoked and a revision published, both
    unheard. When Redis is back, each worker reads the scene once and looks up each token once: the polls of
    the revoked token get 401, all others the new revision."""
    tokens = [client_token_create(name=f"app-{i}", scenes=[scene], user=user) for i in range(3)]
    redis = RedisServer()
    server = Uvicorn(tmp_path / "uvicorn.log", workers=2, MLAB_LOG_LEVEL="DEBUG", REDIS_URL=redis.url)
    held = []
    try:
        for (_, key), count in zip(tokens, (400, 400, 200), strict=True):
            held.append(_hold(server, scene, key, count))
        server.wait_for_waiting(1000)
        redis.kill()
        server.wait_for_log("config listener lost Redis", count=2)
        before = len(server.log())

        # Unheard by the server: its listeners are away, and this process talks to the test Redis anyway.
        client_token_revoke(token=tokens[2][0])
        revision = _publish(scene, user, 20)
        redis = RedisServer(redis.port)

        answers = [polls.answers(timeout=30) for polls in held]
        for answered in answers[:2]:
            assert all(a is not None and (a[0], a[1]["revision"]) == (200, revision) for a in answered)
        assert all(a is not None and a[0] == 401 for a in answers[2])
        caught_up = CAUGHT_UP.findall(server.log()[before:])
        assert len({pid for *_, pid in caught_up}) == 2, caught_up  # both workers
        for scenes, tokens_checked, queries, answered_count, held_count, _ in caught_up:
            assert int(scenes) == 1 and int(tokens_checked) <= 3 and int(queries) <= 1 + int(tokens_checked)
            assert answered_count == held_count
        assert sum(int(held_count) for *_, held_count, _ in caught_up) == 1000
        server.wait_for_waiting(0)
    finally:
        for polls in held:
            polls.close()
        server.stop()
        redis.kill()
