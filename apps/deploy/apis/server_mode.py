"""URLs served by an async view under ASGI and a sync view under WSGI."""

from __future__ import annotations

import asyncio

from django.urls import URLPattern
from django.urls.resolvers import RoutePattern


def server_mode_path(route: str, *, sync_view, async_view, name: str) -> URLPattern:
    """A URL resolving to ``async_view`` when the request is handled in an event loop (ASGI) and to
    ``sync_view`` otherwise (WSGI), so that neither server pays for hopping between an event loop and threads
    on every request."""
    return _ServerModePattern(RoutePattern(route, name=name, is_endpoint=True), sync_view, async_view, name)


class _ServerModePattern(URLPattern):
    def __init__(self, pattern, sync_view, async_view, name):
        super().__init__(pattern, sync_view, name=name)
        self.async_view = async_view

    def resolve(self, path):
        match = super().resolve(path)
        if match is not None and _in_event_loop():
            match.func = self.async_view
        return match


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
