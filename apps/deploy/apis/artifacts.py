"""``GET /api/v1/scenes/{scene}/versions/{v}/artifact/``: a model's bytes, streamed, the sha256 in the ETag.

Chunks stream from Redis, each checked against the database's checksum of that chunk. A cache miss re-warms
the cache from the database first (so a corrupt database copy is refused with 503 before any byte is sent); a
bad cached chunk is replaced by the database's chunk on the fly and repaired afterwards. If Redis is down the
bytes come from the database, each chunk verified.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponseBase, HttpResponseNotAllowed, HttpResponseNotModified, StreamingHttpResponse
from redis import Redis
from redis.exceptions import RedisError

from apps.artifacts.models import Artifact
from apps.artifacts.storage import (
    CACHE_TTL_SECONDS,
    ArtifactCorrupt,
    artifact_cache_warm,
    artifact_chunk_checksums,
    artifact_db_chunk,
    cache_meta_matches,
)
from mlab_client.contract import artifact_chunk_key, artifact_meta_key
from mlabsite.auth_throttle import client_address
from mlabsite.locks import redis_bytes, redis_connection

from ..models import ModelVersion
from .access import ARTIFACT_PERMISSIONS, Refused, readable_scene
from .config import parse_etags

logger = logging.getLogger(__name__)


# --- GET /api/v1/scenes/{scene}/versions/{v}/artifact/ -------------------------------------------------------


def _artifact_lookup(header: str | None, address: str, name: str, version: int) -> tuple[Artifact, list[str]]:
    scene = readable_scene(header, name, address=address, permissions=ARTIFACT_PERMISSIONS)
    model_version = ModelVersion.objects.filter(scene=scene, version=version).select_related("artifact").first()
    if model_version is None:
        raise Refused(404, f"Scene {name!r} has no version {version}.")
    artifact = model_version.artifact
    try:
        return artifact, artifact_chunk_checksums(artifact)
    except ArtifactCorrupt:
        raise _corrupt(version) from None


def _corrupt(version: int) -> Refused:
    return Refused(
        503,
        f"The artifact of version {version} failed its checksum in the database; it was reported and is not served.",
    )


def _artifact_response(chunks, artifact: Artifact, name: str, version: int, etag: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type="application/octet-stream")
    response.headers["ETag"] = etag
    response.headers["Content-Length"] = str(artifact.size)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-v{version}.{artifact.format}"'
    return response


def _sha_ok(data: bytes | None, checksum: str) -> bool:
    return data is not None and hashlib.sha256(data).hexdigest() == checksum


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()


def _redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = aioredis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=10)
    return client


async def artifact_view_async(request, name: str, version: int) -> HttpResponseBase:
    """``GET /api/v1/scenes/{scene}/versions/{v}/artifact/``: the model bytes, the sha256 in the ETag."""
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    try:
        artifact, checksums = await sync_to_async(_artifact_lookup)(
            request.headers.get("Authorization"), client_address(request.META), name, version
        )
    except Refused as refused:
        return refused.response()
    etag = f'"{artifact.sha256}"'
    if etag in parse_etags(request.headers.get("If-None-Match")):
        response = HttpResponseNotModified()
        response.headers["ETag"] = etag
        return response
    use_cache = True
    try:
        if not cache_meta_matches(artifact, redis_bytes(await _redis().get(artifact_meta_key(artifact.sha256)))):
            await sync_to_async(artifact_cache_warm)(artifact)
    except ArtifactCorrupt:
        return _corrupt(version).response()
    except (RedisError, OSError) as exc:
        logger.warning("artifact cache unavailable (%s); streaming %s from the database", exc, artifact.sha256[:12])
        use_cache = False
    return _artifact_response(_artifact_chunks(artifact, checksums, use_cache=use_cache), artifact, name, version, etag)


async def _chunk(artifact: Artifact, index: int, checksum: str, client: aioredis.Redis | None):
    """Chunk ``index``: from the cache when it verifies, else from the database (then flagged for repair)."""
    if client is not None:
        try:
            data = redis_bytes(await client.get(artifact_chunk_key(artifact.sha256, index)))
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
            assert pending is not None  # chunk 0 was started before the loop, each next one an iteration ahead
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
    if not repairs:
        return
    assert client is not None  # _chunk flags a chunk for repair only when it read the cache
    for index, data in repairs:
        try:
            await client.set(artifact_chunk_key(artifact.sha256, index), data, ex=CACHE_TTL_SECONDS)
        except (RedisError, OSError) as exc:
            logger.warning("could not repair cached chunk %s of %s: %s", index, artifact.sha256[:12], exc)


def artifact_view_sync(request, name: str, version: int) -> HttpResponseBase:
    """The same endpoint under WSGI."""
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    try:
        artifact, checksums = _artifact_lookup(
            request.headers.get("Authorization"), client_address(request.META), name, version
        )
    except Refused as refused:
        return refused.response()
    etag = f'"{artifact.sha256}"'
    if etag in parse_etags(request.headers.get("If-None-Match")):
        response = HttpResponseNotModified()
        response.headers["ETag"] = etag
        return response
    connection = redis_connection()
    cache: Redis | None = connection  # None: stream from the database
    try:
        if not cache_meta_matches(artifact, redis_bytes(connection.get(artifact_meta_key(artifact.sha256)))):
            artifact_cache_warm(artifact, connection=connection)
    except ArtifactCorrupt:
        return _corrupt(version).response()
    except RedisError as exc:
        logger.warning("artifact cache unavailable (%s); streaming %s from the database", exc, artifact.sha256[:12])
        cache = None
    return _artifact_response(_artifact_chunks_sync(artifact, checksums, cache), artifact, name, version, etag)


def _artifact_chunks_sync(artifact: Artifact, checksums: list[str], connection: Redis | None):
    repairs: list[tuple[int, bytes]] = []
    for index, checksum in enumerate(checksums):
        data = None
        if connection is not None:
            try:
                data = redis_bytes(connection.get(artifact_chunk_key(artifact.sha256, index)))
            except RedisError:
                data = None
        if not _sha_ok(data, checksum):
            if connection is not None:
                logger.warning(
                    "cached chunk %s of %s is missing or corrupt; using the database", index, artifact.sha256[:12]
                )
            try:
                data = artifact_db_chunk(artifact, index, checksum)
            except ArtifactCorrupt:
                logger.error("aborting the download of %s: its database copy is corrupt", artifact.sha256[:12])
                raise
            if connection is not None:
                repairs.append((index, data))
        yield data
    if not repairs:
        return
    assert connection is not None  # a chunk is flagged for repair only when the cache was read
    for index, data in repairs:
        try:
            connection.set(artifact_chunk_key(artifact.sha256, index), data, ex=CACHE_TTL_SECONDS)
        except RedisError as exc:
            logger.warning("could not repair cached chunk %s of %s: %s", index, artifact.sha256[:12], exc)
