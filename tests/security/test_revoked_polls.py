"""Issue 11 item 10: a long poll opened before its client token was revoked still received one new config.
The token is checked again when the poll wakes: a revoked token gets 401, never the new config. Under ASGI the
check is in memory (the revocation is announced over Redis pub/sub to every process), so a publication waking
many polls costs no query per poll."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import requests
from django.test import Client

from apps.deploy.models import ClientToken
from apps.deploy.services import (
    client_token_create,
    client_token_revoke,
    deployment_create,
    model_version_register,
    scene_create,
    scene_publish,
)
from tests.factories import TrainingRunFactory
from tests.live import Uvicorn

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(
    scope="module",
    params=["mlabsite.asgi:application", "mlabsite.asgi:django_application"],
    ids=["long-poll-door", "django-view"],
)
def server(request, django_db_setup, tmp_path_factory):
    uvicorn = Uvicorn(tmp_path_factory.mktemp("revoked") / "uvicorn.log", app=request.param, MLAB_LOG_LEVEL="DEBUG")
    yield uvicorn
    uvicorn.stop()


@pytest.fixture
def scene_and_token(user):
    scene = scene_create(name=f"revoked-{uuid.uuid4().hex[:8]}", user=user)
    for seed in (1, 2):
        model_version_register(run=TrainingRunFactory(owner=user, seed=seed), scene=scene, user=user)
    deployment_create(scene=scene, splits=[{"version": 1, "weight": 100}], user=user)
    scene_publish(scene_id=scene.pk)
    token, key = client_token_create(name="app", scenes=[scene], user=user)
    return scene, token, key


def _revoke_then_publish(scene, token: ClientToken, user) -> None:
    client_token_revoke(token=token)
    deployment_create(scene=scene, splits=[{"version": 1, "weight": 50}, {"version": 2, "weight": 50}], user=user)
    scene_publish(scene_id=scene.pk)


def test_a_long_poll_whose_token_is_revoked_gets_401_not_the_new_config(server, scene_and_token, user):
    scene, token, key = scene_and_token
    url = f"{server.base}/api/v1/config/{scene.name}/"
    auth = {"Authorization": f"Token {key}"}
    etag = requests.get(url, headers=auth, timeout=10).headers["ETag"]
    waiting = server.log().count(f"poll of {scene.name} waiting")
    result = {}

    def poll():
        result["response"] = requests.get(url, headers={**auth, "If-None-Match": etag}, params={"wait": 30}, timeout=60)

    thread = threading.Thread(target=poll)
    thread.start()
    server.wait_for_log(f"poll of {scene.name} waiting", count=waiting + 1)
    started = time.monotonic()
    _revoke_then_publish(scene, token, user)
    thread.join(timeout=60)
    response = result["response"]
    assert response.status_code == 401, response.content
    assert b"allocation" not in response.content
    assert time.monotonic() - started < 20  # answered at the wake, not when the wait ran out
    assert requests.get(url, headers=auth, timeout=10).status_code == 401


def test_the_wsgi_long_poll_checks_the_token_again_when_it_wakes(scene_and_token, user):
    scene, token, key = scene_and_token
    client = Client(HTTP_AUTHORIZATION=f"Token {key}")
    url = f"/api/v1/config/{scene.name}/"
    etag = client.get(url).headers["ETag"]
    result = {}

    def poll():
        result["response"] = client.get(url, {"wait": "20"}, HTTP_IF_NONE_MATCH=etag)

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(1.0)  # the poll is subscribed and waiting
    _revoke_then_publish(scene, token, user)
    thread.join(timeout=60)
    assert result["response"].status_code == 401
