"""What client processes call: the config (ETag, long-poll) and the artifacts. Async views, for ASGI.

A long poll (``?wait=N`` with a matching ``If-None-Match``) waits on the process's single Redis pub/sub
listener (``notify.ConfigListener``), not on a thread: under uvicorn a thousand waiting polls are a thousand
awaiting coroutines. When the client goes away Django cancels the view; the waiter is removed in ``finally``.
Artifacts stream chunk by chunk from Redis, each chunk checked against the database's checksum; a cache miss
re-warms the cache from the database first (so a corrupt database copy is refused before any byte is sent),
and a bad cached chunk is replaced by the database's chunk on the fly and repaired afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import weakref
from dataclasses import dataclass

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponse, HttpResponseNotModified, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET
from redis.exceptions import RedisError

from mlab_client.contract import artifact_chunk_key, artifact_meta_key

from ..artifacts import (
    CACHE_TTL_SECONDS,
    ArtifactCorrupt,
    artifact_cache_warm,
    artifact_chunk_checksums,
    artifact_db_chunk,
    cache_meta_matches,
)
from ..auth import NotAuthenticated, reader_from_header
from ..configs import config_body
from ..models import Artifact, ConfigEntry, ModelVersion, Scene
from ..notify import config_listener

logger = logging.getLogger(__name__)

WAIT_MAX_SECONDS = 60


class Refused(Exception):
    def __init__(self, response: HttpResponse) -> None:
        self.response = response


def _error(status: int, detail, **headers) -> HttpResponse:
    body = detail if isinstance(detail, dict) else {"detail": detail}
    return JsonResponse(body, status=status, headers=headers)


def _readable_scene(header: str | None, name: str) -> Scene:
    """The scene, if the caller may read it: an owner (user token) or a client token of that scene."""
    try:
        reader = reader_from_header(header)
    except NotAuthenticated as exc:
        raise Refused(_error(401, str(exc), **{"WWW-Authenticate": "Token"})) from None
    scene = Scene.objects.filter(name=name).first()
    if reader.is_client:
        if scene is None or not reader.in_scope(scene):
            raise Refused(_error(403, f"This client token cannot read scene {name!r}."))
    elif scene is None or not reader.owns(scene):
        raise Refused(_error(404, "No such scene."))
    return scene


@dataclass(frozen=True)
class Published:
    revision: int
    etag: str
    body: bytes


def _published(scene_id: int, name: str) -> Published:
    row = ConfigEntry.objects.filter(scene_id=scene_id).values_list("revision", "etag", "content").first()
    if row is None or row[0] == 0:
        raise Refused(_error(404, f"Scene {name!r} has no published deployment yet."))
    return Published(revision=row[0], etag=row[1], body=config_body(row[2]))


def _config_lookup(header: str | None, name: str) -> tuple[int, Published]:
    scene = _readable_scene(header, name)
    return scene.pk, _published(scene.pk, name)


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _parse_wait(raw: str | None) -> float:
    if raw is None or raw == "":
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        wait = math.nan
    if not math.isfinite(wait) or not 0 <= wait <= WAIT_MAX_SECONDS:
        raise Refused(_error(400, {"wait": [f"Must be a number of seconds from 0 to {WAIT_MAX_SECONDS}."]}))
    return wait


def _config_response(published: Published) -> HttpResponse:
    return HttpResponse(
        published.body,
        content_type="application/json",
        headers={"ETag": published.etag, "Cache-Control": "no-cache"},
    )


def _not_modified(etag: str) -> HttpResponse:
    response = HttpResponseNotModified()
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "no-cache"
    return response


@require_GET
async def config_view(request, name: str) -> HttpResponse:
    """``GET /api/v1/config/{scene}/``: the published config with its ETag; 304 when ``If-None-Match`` matches;
    with ``?wait=N`` (N ≤ 60) a matching request is held until a new revision is published or N seconds pass."""
    try:
        wait = _parse_wait(request.GET.get("wait"))
        known = _etags(request.headers.get("If-None-Match"))
        if not (wait and known):
            _, published = await sync_to_async(_config_lookup)(request.headers.get("Authorization"), name)
            if published.etag in known or "*" in known:
                return _not_modified(published.etag)
            return _config_response(published)
        return await _long_poll(request, name, wait, known)
    except Refused as refused:
        return refused.response


async def _long_poll(request, name: str, wait: float, known: set[str]) -> HttpResponse:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    listener = config_listener()
    # Wait first, then look: a change published between the look and the wait cannot be missed.
    waiter = listener.add(name)
    try:
        scene_id, published = await sync_to_async(_config_lookup)(request.headers.get("Authorization"), name)
        while published.etag in known or "*" in known:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return _not_modified(published.etag)
            try:
                await asyncio.wait_for(waiter.event.wait(), remaining)
            except TimeoutError:
                # The last look: a notification may have been lost (Redis down), the database is the truth.
                published = await sync_to_async(_published)(scene_id, name)
                continue
            change = waiter.take()
            if change is None:
                published = await sync_to_async(_published)(scene_id, name)
            elif change.revision > published.revision:
                published = Published(revision=change.revision, etag=change.etag, body=change.body)
        return _config_response(published)
    finally:
        listener.remove(name, waiter)


# --- artifacts ---------------------------------------------------------------------------------------------


def _artifact_lookup(header: str | None, name: str, version: int) -> tuple[Artifact, list[str]]:
    scene = _readable_scene(header, name)
    model_version = ModelVersion.objects.filter(scene=scene, version=version).select_related("artifact").first()
    if model_version is None:
        raise Refused(_error(404, f"Scene {name!r} has no version {version}."))
    artifact = model_version.artifact
    try:
        return artifact, artifact_chunk_checksums(artifact)
    except ArtifactCorrupt:
        raise Refused(_corrupt(version)) from None


def _corrupt(version: int) -> HttpResponse:
    return _error(
        503,
        f"The artifact of version {version} failed its checksum in the database; it was reported and is not served.",
    )


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()


def _redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = aioredis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=10)
    return client


@require_GET
async def artifact_view(request, name: str, version: int) -> HttpResponse:
    """``GET /api/v1/scenes/{scene}/versions/{v}/artifact/``: the model bytes, the sha256 in the ETag."""
    try:
        artifact, checksums = await sync_to_async(_artifact_lookup)(request.headers.get("Authorization"), name, version)
    except Refused as refused:
        return refused.response
    etag = f'"{artifact.sha256}"'
    if etag in _etags(request.headers.get("If-None-Match")):
        return _not_modified(etag)
    use_cache = True
    try:
        cached = cache_meta_matches(artifact, await _redis().get(artifact_meta_key(artifact.sha256)))
        if not cached:
            await sync_to_async(artifact_cache_warm)(artifact)
    except ArtifactCorrupt:
        return _corrupt(version)
    except (RedisError, OSError) as exc:
        logger.warning("artifact cache unavailable (%s); streaming %s from the database", exc, artifact.sha256[:12])
        use_cache = False
    response = StreamingHttpResponse(
        _artifact_chunks(artifact, checksums, use_cache=use_cache), content_type="application/octet-stream"
    )
    response.headers["ETag"] = etag
    response.headers["Content-Length"] = str(artifact.size)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-v{version}.{artifact.format}"'
    return response


def _sha_ok(data: bytes | None, checksum: str) -> bool:
    return data is not None and hashlib.sha256(data).hexdigest() == checksum


async def _chunk(artifact: Artifact, index: int, checksum: str, client: aioredis.Redis | None):
    """Chunk ``index``: from the cache when it verifies, else from the database (then flagged for repair)."""
    if client is not None:
        try:
            data = await client.get(artifact_chunk_key(artifact.sha256, index))
        except (RedisError, OSError):
            data = None
        # Hashing 4 MiB releases the GIL: in a thread it overlaps with sending the previous chunk.
        if await asyncio.to_thread(_sha_ok, data, checksum):
            return data, False
        logger.warning("cached chunk %s of %s is missing or corrupt; using the database", index, artifact.sha256[:12])
    return await sync_to_async(artifact_db_chunk)(artifact, index, checksum), client is not None


async def _artifact_chunks(artifact: Artifact, checksums: list[str], *, use_cache: bool):
    # The client of the loop that iterates (under uvicorn, the view's loop too).
    client = _redis() if use_cache else None
    repairs: list[tuple[int, bytes]] = []
    pending = asyncio.ensure_future(_chunk(artifact, 0, checksums[0], client)) if checksums else None
    try:
        for index in range(len(checksums)):
            data, repaired = await pending
            pending = None
            if index + 1 < len(checksums):
                pending = asyncio.ensure_future(_chunk(artifact, index + 1, checksums[index + 1], client))
            if repaired:
                repairs.append((index, data))
            yield data
    except ArtifactCorrupt:
        logger.error("aborting the download of %s: its database copy is corrupt", artifact.sha256[:12])
        raise
    finally:
        if pending is not None:
            pending.cancel()
    for index, data in repairs:
        try:
            await client.set(artifact_chunk_key(artifact.sha256, index), data, ex=CACHE_TTL_SECONDS)
        except (RedisError, OSError) as exc:
            logger.warning("could not repair cached chunk %s of %s: %s", index, artifact.sha256[:12], exc)
