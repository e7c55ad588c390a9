"""The ASGI door for polls of the config: what it answers itself and what it leaves to Django."""

from __future__ import annotations

import asyncio
import re

import pytest

from apps.deploy.longpoll import LongPollRouter


def _scope(path="/api/v1/config/ctr/", query=b"wait=5", headers=None, scheme="http"):
    headers = {"host": "127.0.0.1", "if-none-match": '"x"', **(headers or {})}
    return {
        "type": "http",
        "method": "GET",
        "scheme": scheme,
        "path": path,
        "root_path": "",
        "query_string": query,
        "headers": [(k.encode(), v.encode()) for k, v in headers.items() if v is not None],
    }


def _route(scope) -> str:
    """'django' when the request is handed to Django, 'door' when the door answers it (the answering itself
    is tested against a real server in test_live.py)."""
    routed = []

    class Door(LongPollRouter):
        async def _answer(self, name, scope, *poll):
            routed.append("door")

    async def django(scope, receive, send):
        routed.append("django")

    asyncio.run(Door(django)(scope, None, None))
    return routed[0]


@pytest.mark.parametrize(
    ("scope", "route"),
    [
        (_scope(), "door"),
        (_scope(query=b""), "door"),  # a plain poll
        (_scope(headers={"if-none-match": None}), "door"),  # nothing to compare with: answered at once
        (_scope(path="/api/v1/scenes/"), "django"),
        (_scope(headers={"host": "evil.example.com"}), "django"),  # Django refuses the host
        (_scope(headers={"user-agent": "BadBot/1.0"}), "django"),  # Django refuses the user agent
    ],
    ids=["long-poll", "plain-poll", "no-etag", "other-route", "bad-host", "disallowed-agent"],
)
def test_what_the_door_answers(settings, scope, route):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    settings.DISALLOWED_USER_AGENTS = [re.compile(r"^BadBot")]
    assert _route(scope) == route


def test_requests_django_would_redirect_to_https_go_to_django(settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert _route(_scope()) == "django"
    assert _route(_scope(headers={"x-forwarded-proto": "https"})) == "door"
    assert _route(_scope(scheme="https")) == "door"


@pytest.mark.django_db
def test_a_client_gone_before_the_answer_leaves_nothing_behind(settings):
    """The door cancels its answer when the client disconnects; the event loop then closes promptly (the
    pub/sub listener stops even though redis-py's reads may swallow a cancellation)."""
    from apps.deploy.notify import config_listener

    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    sent, left = [], []

    async def django(scope, receive, send):
        raise AssertionError("a long poll must not reach Django")

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async def run():
        await LongPollRouter(django)(_scope(), receive, send)
        left.append(config_listener().waiting)

    asyncio.run(asyncio.wait_for(run(), timeout=30))
    assert sent == [] and left == [0]


def _wsgi(app, environ) -> tuple[str, dict[str, str], bytes]:
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers

    body = b"".join(app(dict(environ), start_response))
    return seen["status"], {name.lower(): value for name, value in seen["headers"]}, body


@pytest.mark.django_db(transaction=True)  # both check their connections as around a request: no test transaction
def test_the_wsgi_door_answers_plain_polls_exactly_as_the_sync_view(user):
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import RequestFactory

    from apps.deploy.longpoll import PlainPollRouter
    from apps.deploy.models import ConfigEntry
    from apps.deploy.services import (
        client_token_create,
        deployment_create,
        model_version_register,
        scene_create,
        scene_publish,
    )
    from tests.factories import TrainingRunFactory

    scene = scene_create(name="door-wsgi", user=user)
    model_version_register(run=TrainingRunFactory(owner=user), scene=scene, user=user)
    deployment_create(scene=scene, splits=[{"version": 1, "weight": 100}], user=user)
    scene_publish(scene_id=scene.pk)
    unpublished = scene_create(name="door-wsgi-new", user=user)
    _, key = client_token_create(name="app", scenes=[scene], user=user)
    _, new_key = client_token_create(name="new", scenes=[unpublished], user=user)
    etag = ConfigEntry.objects.get(scene=scene).etag
    view = WSGIHandler()

    def django_only(environ, start_response):
        raise AssertionError("the door answers this itself")

    door = PlainPollRouter(django_only)
    cases = {
        "200": ("door-wsgi", {"HTTP_AUTHORIZATION": f"Token {key}"}),
        "304": ("door-wsgi", {"HTTP_AUTHORIZATION": f"Token {key}", "HTTP_IF_NONE_MATCH": etag}),
        "401 without a token": ("door-wsgi", {}),
        "401 unknown token": ("door-wsgi", {"HTTP_AUTHORIZATION": "Token mlc_nobody"}),
        "403 other scene": ("door-wsgi-new", {"HTTP_AUTHORIZATION": f"Token {key}"}),
        "404 nothing published": ("door-wsgi-new", {"HTTP_AUTHORIZATION": f"Token {new_key}"}),
    }
    for case, (name, headers) in cases.items():
        environ = RequestFactory().get(f"/api/v1/config/{name}/", HTTP_HOST="testserver", **headers).environ
        assert _wsgi(door, environ) == _wsgi(view, environ), case

    # Long polls, other hosts and other routes are Django's.
    for path, extra in (
        (f"/api/v1/config/{scene.name}/?wait=1", {}),
        (f"/api/v1/config/{scene.name}/", {"HTTP_HOST": "evil.example.com"}),
        ("/api/v1/scenes/", {}),
    ):
        environ = RequestFactory().get(path, **{"HTTP_HOST": "testserver", **extra}).environ
        with pytest.raises(AssertionError, match="the door answers"):
            _wsgi(door, environ)
