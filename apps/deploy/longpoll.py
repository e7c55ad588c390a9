"""The doors for polls of the config, ``GET /api/v1/config/{scene}/``: under ASGI every poll (plain, or long
with ``?wait=N`` and ``If-None-Match``) is answered in the event loop (``LongPollRouter``); under WSGI plain
polls are answered before Django's handler (``PlainPollRouter``).

Django's ASGI handler gives every request a thread of its own (a thread pool per request, in fact) and sends
the request signals through it, so each answer costs several handoffs between the event loop and threads. A
thousand long polls woken by one publication then queue behind each other. The ASGI door answers those
requests with the same core as the Django view (``config_answer``) in the event loop itself: a held poll is a
future in the process's listener, woken with the answer of its revision already built, and sent as the same
two ASGI messages every other poll of that revision sends (``_messages``). Database work (only on a cache
miss) runs in a worker thread with the connection checks a request would do. Under WSGI, Django's handler
and middleware cost as much as a poll itself: the WSGI door answers plain polls with the sync view's core.

Both doors answer exactly as the Django view would: what Django refuses (the host, a disallowed user agent)
or redirects (HTTPS, ``www.``) goes to Django, and their answers carry the headers Django's middleware adds
(``middleware_headers``; tests compare the doors with the view). Every other request goes to Django.
"""

from __future__ import annotations

import asyncio
import functools
import re
from http import HTTPStatus
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http.request import split_domain_port, validate_host

from .apis.config import config_answer, config_answer_sync
from .configs import Answer

CONFIG_PATH = re.compile(r"/api/v1/config/(?P<name>[-a-zA-Z0-9_]+)/")

SECURITY_MIDDLEWARE = "django.middleware.security.SecurityMiddleware"
COMMON_MIDDLEWARE = "django.middleware.common.CommonMiddleware"
XFRAME_MIDDLEWARE = "django.middleware.clickjacking.XFrameOptionsMiddleware"

Headers = tuple[tuple[bytes, bytes], ...]


def database(fn):
    """``fn`` run in a worker thread, its database connections checked before and after, as around a request."""

    def run(*args, **kwargs):
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False)


def _client_host(scope) -> str:
    """The client's address as Django's ASGI handler would put it in REMOTE_ADDR."""
    client = scope.get("client")
    return client[0] if client else "unknown"


class LongPollRouter:
    """ASGI middleware: polls of the config are answered here, every other request by ``app``."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = scope["path"].removeprefix(scope.get("root_path", ""))
            name = _config_scene(path)
            if name is not None and (poll := _poll_of(scope)) is not None:
                await self._answer(name, scope, *poll, receive, send)
                return
        await self.app(scope, receive, send)

    async def _answer(
        self, name: str, scope, authorization, if_none_match, wait: str, extra: Headers, receive, send
    ) -> None:
        """Answer the poll; while it is held, its frames keep only what it needs (a thousand of them wait)."""
        answer: Answer | None
        if not (wait and if_none_match):
            answer = await config_answer(
                authorization=authorization,
                if_none_match=if_none_match,
                wait=wait,
                name=name,
                address=_client_host(scope),
                run_sync=database,
            )
        else:
            # Held: watch the connection, so that a client who goes away is forgotten at once. Once the answer
            # is complete the server answers this receive() with http.disconnect, and the watch ends by itself.
            leaving = asyncio.ensure_future(_disconnected(receive))
            answer = await config_answer(
                authorization=authorization,
                if_none_match=if_none_match,
                wait=wait,
                name=name,
                address=_client_host(scope),
                run_sync=database,
                gone=leaving,
            )
            if leaving.done():  # the client left (None: while its poll was held)
                return
        assert answer is not None  # only a poll given ``gone`` ends without an answer
        start, body = _messages(answer, extra)
        await send(start)
        await send(body)


class PlainPollRouter:
    """WSGI middleware: plain polls of the config (``GET``, no query) are answered here, as the sync view would
    answer them, without Django's handler and middleware around them (they cost a bare Django view as much
    as the poll itself). Long polls (``?wait=``) and everything else go to ``app``."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "GET" and not environ.get("QUERY_STRING"):
            name = _config_scene(environ.get("PATH_INFO", ""))
            if name is not None:
                headers = {
                    key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key[:5] == "HTTP_"
                }
                secure = served_here(environ.get("wsgi.url_scheme", "http"), headers)
                if secure is not None:
                    answer = _answer_sync(name, headers, environ.get("REMOTE_ADDR") or "unknown")
                    status, response_headers = _wsgi_head(answer, middleware_headers(secure))
                    start_response(status, list(response_headers))
                    return [answer.body]
        return self.app(environ, start_response)


def _answer_sync(name: str, headers: dict[str, str], address: str) -> Answer:
    """The sync view's answer, with the database connections checked before and after, as around a request."""
    close_old_connections()
    try:
        return config_answer_sync(
            authorization=headers.get("authorization"),
            if_none_match=headers.get("if-none-match"),
            wait=None,
            name=name,
            address=address,
        )
    finally:
        close_old_connections()


def _wsgi_head(answer: Answer, extra: Headers) -> tuple[str, list[tuple[str, str]]]:
    """Status line and headers of ``answer`` under WSGI, built once per answer (and middleware headers)."""
    head = answer.encoded.get(("wsgi", extra))
    if head is None:
        headers = [*answer.headers.items(), *((name.decode(), value.decode()) for name, value in extra)]
        headers.append(("Content-Length", str(len(answer.body))))
        status = f"{answer.status} {HTTPStatus(answer.status).phrase}"
        head = answer.encoded[("wsgi", extra)] = (status, headers)
    return head


def _config_scene(path: str) -> str | None:
    match = CONFIG_PATH.fullmatch(path)
    return match["name"] if match is not None else None


def _poll_of(scope) -> tuple[str | None, str | None, str, Headers] | None:
    """What the door needs of a request for the config: its Authorization and If-None-Match headers, its wait
    and the middleware's headers its answer carries; None when Django must answer it (``served_here``)."""
    headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
    secure = served_here(scope.get("scheme", "http"), headers)
    if secure is None:
        return None
    wait = parse_qs(scope["query_string"].decode("latin-1")).get("wait", [""])[-1]
    return headers.get("authorization"), headers.get("if-none-match"), wait, middleware_headers(secure)


def served_here(scheme: str, headers: dict[str, str]) -> bool | None:
    """None when Django would refuse the request (its host, its user agent) or redirect it (HTTPS, ``www.``):
    then Django answers it. Otherwise whether the request is secure, as Django would say (for HSTS)."""
    allowed = settings.ALLOWED_HOSTS or ([".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    raw_host = headers.get("host", "")
    if settings.USE_X_FORWARDED_HOST and "x-forwarded-host" in headers:
        raw_host = headers["x-forwarded-host"]
    host, _ = split_domain_port(raw_host)
    if not host or not validate_host(host, allowed):
        return None
    if COMMON_MIDDLEWARE in settings.MIDDLEWARE:
        if settings.PREPEND_WWW and not raw_host.startswith("www."):
            return None
        agent = headers.get("user-agent")
        if agent is not None and any(pattern.search(agent) for pattern in settings.DISALLOWED_USER_AGENTS):
            return None
    secure = _scheme(scheme, headers) == "https"
    if settings.SECURE_SSL_REDIRECT and not secure and SECURITY_MIDDLEWARE in settings.MIDDLEWARE:
        return None
    return secure


def _scheme(scheme: str, headers: dict[str, str]) -> str:
    """``HttpRequest.scheme``: the proxy's header when one is configured and sent, else the connection's."""
    if settings.SECURE_PROXY_SSL_HEADER:
        name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        value = headers.get(name.removeprefix("HTTP_").replace("_", "-").lower())
        if value is not None:
            return "https" if value.split(",", 1)[0].strip() == secure_value else "http"
    return scheme


def middleware_headers(secure: bool) -> Headers:
    """The headers Django's middleware adds to every answer of the config view (SecurityMiddleware's and
    XFrameOptionsMiddleware's, as settings configure them; CommonMiddleware's Content-Length is per answer).
    One tuple per configuration, shared by every poll: held polls keep a reference, not a copy."""
    policy = settings.SECURE_REFERRER_POLICY
    return _middleware_headers(
        secure,
        SECURITY_MIDDLEWARE in settings.MIDDLEWARE,
        settings.SECURE_HSTS_SECONDS,
        settings.SECURE_HSTS_INCLUDE_SUBDOMAINS,
        settings.SECURE_HSTS_PRELOAD,
        settings.SECURE_CONTENT_TYPE_NOSNIFF,
        policy if isinstance(policy, str) or policy is None else tuple(policy),
        settings.SECURE_CROSS_ORIGIN_OPENER_POLICY,
        getattr(settings, "X_FRAME_OPTIONS", "DENY") if XFRAME_MIDDLEWARE in settings.MIDDLEWARE else None,
    )


@functools.lru_cache(maxsize=16)
def _middleware_headers(
    secure, security, hsts_seconds, hsts_subdomains, hsts_preload, nosniff, referrer_policy, opener_policy, frame
) -> Headers:
    headers: list[tuple[str, str]] = []
    if security:
        if hsts_seconds and secure:
            hsts = f"max-age={hsts_seconds}"
            hsts += "; includeSubDomains" if hsts_subdomains else ""
            hsts += "; preload" if hsts_preload else ""
            headers.append(("strict-transport-security", hsts))
        if nosniff:
            headers.append(("x-content-type-options", "nosniff"))
        if referrer_policy:
            values = (
                [value.strip() for value in referrer_policy.split(",")]
                if isinstance(referrer_policy, str)
                else referrer_policy
            )
            headers.append(("referrer-policy", ",".join(values)))
        if opener_policy:
            headers.append(("cross-origin-opener-policy", opener_policy))
    if frame is not None:
        headers.append(("x-frame-options", frame.upper()))
    return tuple((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers)


def _messages(answer: Answer, extra: Headers) -> tuple[dict, dict]:
    """The two ASGI messages of ``answer``, built once per answer (and set of middleware headers): every poll
    woken by one publication sends these same two objects (servers read them; none writes to them)."""
    messages = answer.encoded.get(extra)
    if messages is None:
        headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers.items()]
        headers += extra
        headers.append((b"content-length", str(len(answer.body)).encode()))
        start = {"type": "http.response.start", "status": answer.status, "headers": headers}
        messages = answer.encoded[extra] = (start, {"type": "http.response.body", "body": answer.body})
    return messages


async def _disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
