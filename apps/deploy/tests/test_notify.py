"""The listener's fan-out, in process: one Published per notification handed to every waiter of the scene, a
revocation waking that token's waiters only, and the catch-up's database work (one read per scene, one
lookup per token)."""

from __future__ import annotations

import asyncio
import json

import pytest

from apps.deploy.configs import config_body
from apps.deploy.notify import ConfigListener, Wake, caught_up
from apps.deploy.selectors import client_token_is_revoked
from apps.deploy.services import (
    client_token_create,
    client_token_revoke,
    deployment_create,
    model_version_register,
    scene_create,
    scene_publish,
)
from tests.factories import TrainingRunFactory


def _listener() -> ConfigListener:
    listener = ConfigListener("redis://unused")
    listener.task = asyncio.get_running_loop().create_future()  # no subscription: messages are handed in
    return listener


def _notification(scene: str, revision: int) -> bytes:
    content = {"scene": scene, "revision": revision}
    return json.dumps({"scene": scene, "revision": revision, "etag": f'"e{revision}"', "content": content}).encode()


def test_every_waiter_of_a_scene_gets_the_same_answer_object():
    async def run():
        listener = _listener()
        waiters = [listener.add("ctr", known=('"e1"',), digest=f"d{i % 2}") for i in range(5)]
        other = listener.add("cvr", known=('"e1"',))
        current = listener.add("ctr", known=('"e2"',))  # already has what is published next
        for waiter in [*waiters, other, current]:
            waiter.revision = 1 if waiter is not current else 2
        listener._dispatch(_notification("ctr", 2))
        await asyncio.sleep(0)
        outcomes = [waiter.future.result() for waiter in waiters]
        assert all(outcome is outcomes[0] for outcome in outcomes)  # one object per revision and process
        assert outcomes[0].body == config_body({"scene": "ctr", "revision": 2})
        assert outcomes[0].ok is outcomes[0].ok  # its answer is built once
        assert not other.future.done() and not current.future.done()
        for waiter in [*waiters, other, current]:
            listener.remove(waiter)
        assert listener.waiting == 0 and listener.by_scene == {} and listener.by_token == {}

    asyncio.run(run())


def test_a_revocation_wakes_the_waiters_of_that_token_only():
    async def run():
        listener = _listener()
        revoked = [listener.add("ctr", known=('"e1"',), digest="gone") for _ in range(3)]
        kept = listener.add("ctr", known=('"e1"',), digest="kept")
        listener._revoked(b"gone")
        assert [waiter.future.result() for waiter in revoked] == [Wake.REVOKED] * 3
        assert not kept.future.done()
        assert client_token_is_revoked("gone") and not client_token_is_revoked("kept")

    asyncio.run(run())


@pytest.mark.django_db(
    transaction=True
)  # caught_up checks its connection as a request would: no test transaction around it
def test_a_catch_up_reads_each_scene_once_and_looks_up_each_token_once(user, django_assert_num_queries):
    scenes = []
    for index in range(3):
        scene = scene_create(name=f"catch-up-{index}", user=user)
        model_version_register(run=TrainingRunFactory(owner=user, seed=index), scene=scene, user=user)
        deployment_create(scene=scene, splits=[{"version": 1, "weight": 100}], user=user)
        scene_publish(scene_id=scene.pk)
        scenes.append(scene)
    tokens = [client_token_create(name=f"app-{i}", scenes=scenes[: i + 1], user=user)[0] for i in range(3)]
    digests = [token.key for token in tokens]
    client_token_revoke(token=tokens[0])

    with django_assert_num_queries(len(scenes) + len(digests)):
        found = caught_up([scene.name for scene in scenes], digests)
    assert found.queries == len(scenes) + len(digests)
    assert {name: published.revision for name, published in found.published.items() if published} == {
        scene.name: 1 for scene in scenes
    }
    assert found.scopes[digests[0]] is None  # revoked while nobody listened
    assert found.scopes[digests[2]] == frozenset(scene.name for scene in scenes)
