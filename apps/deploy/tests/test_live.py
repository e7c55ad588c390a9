"""The client endpoints served by a real uvicorn process: ETag, long-poll (wakes on publish, times out with
304, survives client disconnects), scope, and artifact streaming."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
import uuid

import pytest
import requests

from apps.deploy.models import ConfigEntry
from apps.deploy.services import (
    client_token_create,
    deployment_create,
    model_version_register,
    scene_create,
    scene_publish,
)
from tests.live import Uvicorn

from .onnx_models import binary_model

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(
    scope="module",
    params=["mlabsite.asgi:application", "mlabsite.asgi:django_application"],
    ids=["long-poll-door", "django-view"],
)
def server(request, django_db_setup, tmp_path_factory):
    """uvicorn serving Mlab as deployed (long polls through apps.deploy.longpoll), and serving the same
    requests through Django's async view alone."""
    uvicorn = Uvicorn(tmp_path_factory.mktemp("live") / "uvicorn.log", app=request.param, MLAB_LOG_LEVEL="DEBUG")
    yield uvicorn
    uvicorn.stop()
    log = uvicorn.log()
    assert "Traceback" not in log and "lost Redis" not in log, log[-4000:]


@pytest.fixture
def live_scene(make_run, user):
    # A new name per test: the server process keeps a short memo of configs by scene name.
    scene = scene_create(name=f"live-{uuid.uuid4().hex[:8]}", user=user)
    for seed in (1, 2):
        model_version_register(run=make_run(seed=seed), scene=scene, user=user)
    deployment_create(scene=scene, splits=[{"version": 1, "weight": 100}], user=user)
    scene_publish(scene_id=scene.pk)
    _, key = client_token_create(name="ads", scenes=[scene], user=user)
    return scene, {"Authorization": f"Token {key}"}


def _config(server, scene, headers, **params):
    return requests.get(f"{server.base}/api/v1/config/{scene.name}/", headers=headers, params=params, timeout=90)


def test_etag_and_304(server, live_scene):
    scene, auth = live_scene
    first = _config(server, scene, auth)
    assert first.status_code == 200 and first.json()["revision"] == 1
    etag = first.headers["ETag"]
    assert etag == ConfigEntry.objects.get(scene=scene).etag
    assert _config(server, scene, {**auth, "If-None-Match": etag}).status_code == 304


def test_a_long_poll_times_out_with_304(server, live_scene):
    scene, auth = live_scene
    etag = _config(server, scene, auth).headers["ETag"]
    response = _config(server, scene, {**auth, "If-None-Match": etag}, wait="1")
    assert response.status_code == 304 and response.headers["ETag"] == etag


def _publish_while_polled(server, scene, user, auth, etag, weights):
    """Start a long poll, wait until the server holds it, publish a new split; return the poll's response
    and how long it waited."""
    result = {}
    waiting_before = server.log().count(f"poll of {scene.name} waiting")

    def poll():
        started = time.monotonic()
        result["response"] = _config(server, scene, {**auth, "If-None-Match": etag}, wait="60")
        result["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=poll)
    thread.start()
    server.wait_for_log(f"poll of {scene.name} waiting", count=waiting_before + 1)
    splits = [{"version": v, "weight": w} for v, w in weights.items()]
    deployment_create(scene=scene, splits=splits, user=user)
    published = scene_publish(scene_id=scene.pk)
    thread.join(timeout=90)
    return result["response"], result["elapsed"], published


def test_a_long_poll_wakes_on_publish_with_the_new_config(server, live_scene, user):
    scene, auth = live_scene
    etag = _config(server, scene, auth).headers["ETag"]
    response, elapsed, published = _publish_while_polled(server, scene, user, auth, etag, {1: 80, 2: 20})
    assert response.status_code == 200
    entry = ConfigEntry.objects.get(scene=scene)
    assert response.json() == entry.content and response.json()["revision"] == published.revision == 2
    assert response.headers["ETag"] == entry.etag != etag
    assert elapsed < 30  # woken by the notification, not by the 60-second timer


def _abandoned_poll(server, scene, auth, etag) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(
        (
            f"GET /api/v1/config/{scene.name}/?wait=60 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {auth['Authorization']}\r\nIf-None-Match: {etag}\r\n\r\n"
        ).encode()
    )
    return sock


def test_the_server_survives_clients_that_disconnect_while_waiting(server, live_scene, user):
    scene, auth = live_scene
    etag = _config(server, scene, auth).headers["ETag"]
    waiting, left = f"poll of {scene.name} waiting", f"poll of {scene.name} left"
    waiting_before, left_before = server.log().count(waiting), server.log().count(left)
    sockets = [_abandoned_poll(server, scene, auth, etag) for _ in range(20)]
    server.wait_for_log(waiting, count=waiting_before + 20)
    for sock in sockets:
        sock.close()
    # every abandoned poll is removed (Django cancels the view), and nobody is left waiting
    server.wait_for_log(left, count=left_before + 20)
    assert set(server.waiting().values()) == {0}
    assert requests.get(f"{server.base}/healthz", timeout=5).status_code == 200
    response, elapsed, _ = _publish_while_polled(server, scene, user, auth, etag, {2: 100})
    assert response.status_code == 200 and response.json()["revision"] == 2 and elapsed < 30


def test_scope_over_http(server, live_scene, user):
    scene, auth = live_scene
    other = scene_create(name="other-scene", user=user)
    assert _config(server, other, auth).status_code == 403
    assert requests.get(f"{server.base}/api/v1/scenes/", headers=auth, timeout=10).status_code == 401
    assert _config(server, scene, {}).status_code == 401


def test_artifact_streams_over_http(server, live_scene):
    scene, auth = live_scene
    response = requests.get(f"{server.base}/api/v1/scenes/{scene.name}/versions/2/artifact/", headers=auth, timeout=30)
    assert response.status_code == 200
    assert response.content == binary_model(2).onnx_bytes
    assert response.headers["ETag"] == f'"{hashlib.sha256(response.content).hexdigest()}"'


def test_a_bad_wait_is_400_naming_it_over_http(server, live_scene):
    scene, auth = live_scene
    etag = _config(server, scene, auth).headers["ETag"]
    response = _config(server, scene, {**auth, "If-None-Match": etag}, wait="61")
    assert response.status_code == 400 and "wait" in response.json()
    assert _config(server, scene, {"If-None-Match": etag}, wait="5").status_code == 401


@pytest.fixture(scope="module")
def door_and_view(django_db_setup, tmp_path_factory):
    """Mlab as deployed (polls answered by the door) beside the same requests answered by Django's view."""
    log_dir = tmp_path_factory.mktemp("parity")
    door = Uvicorn(log_dir / "door.log", app="mlabsite.asgi:application")
    view = Uvicorn(log_dir / "view.log", app="mlabsite.asgi:django_application")
    yield door, view
    door.stop()
    view.stop()


def _seen(response) -> tuple[int, dict[str, str], bytes]:
    headers = {
        name.lower(): value for name, value in response.headers.items() if name.lower() not in ("date", "server")
    }
    return response.status_code, headers, response.content


def test_the_door_answers_exactly_as_the_django_view(door_and_view, live_scene, user):
    """Status, headers (the security middleware's included) and body, for every kind of answer."""
    door, view = door_and_view
    scene, auth = live_scene
    etag = ConfigEntry.objects.get(scene=scene).etag
    other = scene_create(name=f"other-{uuid.uuid4().hex[:8]}", user=user)
    unpublished = scene_create(name=f"new-{uuid.uuid4().hex[:8]}", user=user)
    _, key = client_token_create(name="new", scenes=[unpublished], user=user)
    cases = {
        "200": (scene, auth, {}),
        "304": (scene, {**auth, "If-None-Match": etag}, {}),
        "401 without a token": (scene, {}, {}),
        "401 unknown token": (scene, {"Authorization": "Token mlc_nobody"}, {}),
        "403 other scene": (other, auth, {}),
        "404 nothing published": (unpublished, {"Authorization": f"Token {key}"}, {}),
        "400 bad wait": (scene, {**auth, "If-None-Match": etag}, {"wait": "61"}),
        "304 long poll timed out": (scene, {**auth, "If-None-Match": etag}, {"wait": "0.5"}),
        "200 long poll of an old revision": (scene, {**auth, "If-None-Match": '"old"'}, {"wait": "5"}),
    }
    for case, (target, headers, params) in cases.items():
        answers = [_seen(_config(server, target, headers, **params)) for server in (door, view)]
        assert answers[0] == answers[1], case
    assert "x-content-type-options" in answers[0][1] and "x-frame-options" in answers[0][1]

    woken = {}

    def poll(server):
        woken[server.port] = _seen(_config(server, scene, {**auth, "If-None-Match": etag}, wait="30"))

    threads = [threading.Thread(target=poll, args=(server,)) for server in (door, view)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)  # both polls are held
    deployment_create(scene=scene, splits=[{"version": 1, "weight": 40}, {"version": 2, "weight": 60}], user=user)
    scene_publish(scene_id=scene.pk)
    for thread in threads:
        thread.join(timeout=60)
    assert woken[door.port] == woken[view.port] and woken[door.port][0] == 200
