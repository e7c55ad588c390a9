"""Static files (the admin's CSS and JavaScript) served by WhiteNoise, streamed asynchronously under ASGI.

WhiteNoise hands Django a file response whose content is a synchronous iterator. Under ASGI Django then warns
("StreamingHttpResponse must consume synchronous iterators …") on every file and reads it whole in a thread.
Here, when the request came through ASGI, the response's content is an asynchronous iterator of the file's
chunks instead; under WSGI nothing changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from django.core.handlers.asgi import ASGIRequest
from whitenoise.middleware import WhiteNoiseMiddleware

CHUNK = 64 * 1024


async def _chunks(file) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(file.read, CHUNK):
        yield chunk


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # an empty asynchronous generator (a 304, a HEAD)


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise's middleware; see the module doc. The file is still closed by the response (its closer was
    registered when the response was made)."""

    @staticmethod
    def serve(static_file, request):
        response = WhiteNoiseMiddleware.serve(static_file, request)
        if isinstance(request, ASGIRequest):
            file = response.file_to_stream
            response.streaming_content = _chunks(file) if file is not None else _nothing()
        return response
