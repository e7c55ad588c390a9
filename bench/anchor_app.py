"""The bare anchor of bench/propagation.py: what a plain async Django app does to answer long polls woken by
Redis pub/sub. One subscription per process (event loop); a view awaits the next message and answers a
constant JSON. Served by ``uvicorn bench.anchor_app:application`` with ``DJANGO_SETTINGS_MODULE=
bench.anchor_settings``, exactly as Mlab is served (same uvicorn, same workers, same clients).

    PUBLISH bench:anchor <anything>     wakes every waiting poll of every process
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.anchor_settings")

import redis.asyncio as aioredis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpResponse, HttpResponseNotModified  # noqa: E402
from django.urls import path  # noqa: E402

CHANNEL = "bench:anchor"
WAIT_MAX_SECONDS = 60


class Listener:
    """The process's one subscription: each message sets the current event and starts a new one."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        client = aioredis.from_url(settings.ANCHOR_REDIS_URL)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(CHANNEL)
        async for _ in pubsub.listen():
            event, self.event = self.event, asyncio.Event()
            event.set()


_listener: list[Listener] = []
_body: list[bytes] = []


async def poll(request, name: str) -> HttpResponse:
    if not _listener:
        _listener.append(Listener())
        _body.append(Path(settings.ANCHOR_BODY_PATH).read_bytes())
    event = _listener[0].event
    try:
        async with asyncio.timeout(min(float(request.GET.get("wait", 0)), WAIT_MAX_SECONDS)):
            await event.wait()
    except TimeoutError:
        return HttpResponseNotModified()
    # Content-Length as Mlab sends it (Django's ASGI handler would otherwise have uvicorn chunk the body).
    body = _body[0]
    return HttpResponse(
        body, content_type="application/json", headers={"ETag": '"anchor"', "Content-Length": str(len(body))}
    )


async def healthz(request) -> HttpResponse:
    return HttpResponse(b"ok")


urlpatterns = [path("healthz", healthz), path("api/v1/config/<slug:name>/", poll)]
application = get_asgi_application()
