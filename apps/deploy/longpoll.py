"""The ASGI door for long polls of the config: ``GET /api/v1/config/{scene}/?wait=N`` with ``If-None-Match``.

Django's ASGI handler gives every request a thread of its own and sends the request signals through it, so
each answer costs several handoffs between the event loop and that thread. A thousand long polls woken by one
publication then queue for seconds behind each other (bench/propagation.py measured ~5 s on this machine's
two cores). This door answers those requests with the same core as the Django view (``config_answer``) in
the event loop itself: a woken poll is answered with no thread at all, and database work (only on a cache
miss) runs in a worker thread with the connection checks a request would do. Everything else, including
plain polls and anything Django would refuse (host) or redirect (HTTPS), goes to Django.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http.request import split_domain_port, validate_host

from .apis.config import config_answer

CONFIG_PATH = re.compile(r"/api/v1/config/(?P<name>[-a-zA-Z0-9_]+)/")


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
    """ASGI middleware: long polls of the config are answered here, every other request by ``app``."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = scope["path"].removeprefix(scope.get("root_path", ""))
            match = CONFIG_PATH.fullmatch(path)
            if match is not None:
                headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
                wait = parse_qs(scope["query_string"].decode("latin-1")).get("wait", [""])[-1]
                if wait and headers.get("if-none-match") and self._django_would_serve(scope, headers):
                    await self._long_poll(match["name"], scope, headers, wait, receive, send)
                    return
        await self.app(scope, receive, send)

    @staticmethod
    def _django_would_serve(scope, headers: dict[str, str]) -> bool:
        """False when Django would refuse the host or redirect to HTTPS: then Django answers it."""
        allowed = settings.ALLOWED_HOSTS or ([".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
        host, _ = split_domain_port(headers.get("host", ""))
        if not host or not validate_host(host, allowed):
            return False
        if not settings.SECURE_SSL_REDIRECT or scope.get("scheme") == "https":
            return True
        proxy_header = settings.SECURE_PROXY_SSL_HEADER
        if proxy_header:
            name, value = proxy_header
            return headers.get(name.removeprefix("HTTP_").replace("_", "-").lower()) == value
        return False

    async def _long_poll(self, name: str, scope, headers: dict[str, str], wait: str, receive, send) -> None:
        answering = asyncio.ensure_future(
            config_answer(
                authorization=headers.get("authorization"),
                if_none_match=headers.get("if-none-match"),
                wait=wait,
                name=name,
                address=_client_host(scope),
                run_sync=database,
            )
        )
        leaving = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({answering, leaving}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (answering, leaving):
                if not task.done():
                    task.cancel()
        if not answering.done() or answering.cancelled():
            await asyncio.gather(answering, return_exceptions=True)  # the client left: the waiter is removed
            return
        answer = answering.result()
        response_headers = [(key.lower().encode(), value.encode()) for key, value in answer.headers.items()]
        response_headers.append((b"content-length", str(len(answer.body)).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": response_headers})
        await send({"type": "http.response.body", "body": answer.body})


async def _disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
