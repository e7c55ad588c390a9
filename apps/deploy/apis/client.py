"""What client processes call: the config (ETag, long-poll) and the artifacts.

Each endpoint has an async view for ASGI (uvicorn: how Mlab is served) and a sync view for WSGI (gunicorn's
sync workers); ``server_mode_path`` picks the one matching the server, so neither pays for hopping between
an event loop and threads on every request. Both share the lookups below.

Under ASGI a long poll (``?wait=N`` with a matching ``If-None-Match``) waits on the process's single Redis
pub/sub listener (``notify.ConfigListener``): a thousand waiting polls are a thousand awaiting coroutines, not
threads. When the client goes away Django cancels the view and the waiter is removed in ``finally``. (Under
WSGI a long poll necessarily holds its worker thread; it waits on a pub/sub subscription of its own.)

Artifacts stream chunk by chunk from Redis, each chunk checked against the database's checksum. A cache miss
re-warms the cache from the database first (so a corrupt database copy is refused before any byte is sent);
a bad cached chunk is replaced by the database's chunk on the fly and repaired afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
import weakref

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import (
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseNotModified,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import URLPattern
from django.urls.resolvers import RoutePattern
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
from ..configs import Published, config_body, config_cache_key, config_cache_parse, config_cache_set, config_memo
from ..locks import redis_connection
from ..models import Artifact, ConfigEntry, ModelVersion, Scene
from ..notify import channel_prefix, config_listener
from ..selectors import NOT_CACHED, client_token_scenes, client_token_scenes_cached
from ..services.scenes import CLIENT_TOKEN_PREFIX, client_token_digest

logger = logging.getLogger(__name__)

WAIT_MAX_SECONDS = 60


def server_mode_path(route: str, *, sync_view, async_view, name: str) -> URLPattern:
    """A URL resolving to ``async_view`` when the request is handled in an event loop (ASGI) and to
    ``sync_view`` otherwise (WSGI)."""
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


class Refused(Exception):
    def __init__(self, response: HttpResponse) -> None:
        self.response = response


def _error(status: int, detail, **headers) -> HttpResponse:
    body = detail if isinstance(detail, dict) else {"detail": detail}
    return JsonResponse(body, status=status, headers=headers)


def _unauthenticated(message: str) -> Refused:
    return Refused(_error(401, message, **{"WWW-Authenticate": "Token"}))


def _readable_scene(header: str | None, name: str) -> Scene:
    """The scene, if the caller may read it: an owner (user token) or a client token of that scene."""
    try:
        reader = reader_from_header(header)
    except NotAuthenticated as exc:
        raise _unauthenticated(str(exc)) from None
    scene = Scene.objects.filter(name=name).first()
    if reader.is_client:
        if scene is None or not reader.in_scope(scene):
            raise Refused(_error(403, f"This client token cannot read scene {name!r}."))
    elif scene is None or not reader.owns(scene):
        raise Refused(_error(404, "No such scene."))
    return scene


def _client_key(header: str | None) -> str | None:
    scheme, _, key = (header or "").partition(" ")
    key = key.strip()
    return key if scheme.lower() == "token" and key.startswith(CLIENT_TOKEN_PREFIX) else None


def _client_scope_refusal(scenes: frozenset[str] | None, name: str) -> Refused | None:
    if scenes is None:
        return _unauthenticated("Invalid token.")
    if name not in scenes:
        return Refused(_error(403, f"This client token cannot read scene {name!r}."))
    return None


def _authorize(header: str | None, name: str) -> None:
    """Raise Refused unless the caller may read the scene's config. Client tokens, the hot path, are answered
    from the process's short-lived cache of token scopes; user tokens check ownership in the database."""
    key = _client_key(header)
    if key is None:
        _readable_scene(header, name)
        return
    refusal = _client_scope_refusal(client_token_scenes(digest=client_token_digest(key)), name)
    if refusal is not None:
        raise refusal


async def _authorize_async(header: str | None, name: str) -> None:
    key = _client_key(header)
    if key is None:
        await sync_to_async(_readable_scene)(header, name)
        return
    digest = client_token_digest(key)
    scenes = client_token_scenes_cached(digest)
    if scenes is NOT_CACHED:
        scenes = await sync_to_async(client_token_scenes)(digest=digest)
    refusal = _client_scope_refusal(scenes, name)
    if refusal is not None:
        raise refusal


def _published_db(name: str) -> Published:
    """The published config as the database has it (the truth), copied into the polls' Redis cache."""
    row = ConfigEntry.objects.filter(scene__name=name).values_list("revision", "etag", "content").first()
    if row is None or not row[0]:
        raise Refused(_error(404, f"Scene {name!r} has no published deployment yet."))
    published = Published(revision=row[0], etag=row[1], body=config_body(row[2]))
    try:
        config_cache_set(
            redis_connection(), scene=name, revision=published.revision, etag=published.etag, body=published.body
        )
    except RedisError as exc:
        logger.warning("could not cache the config of %s: %s", name, exc)
    return published


def _published(name: str) -> Published:
    """The published config: from the process's memo, else Redis (one GET), else the database."""
    published = config_memo.get(name)
    if published is None:
        try:
            hit = config_cache_parse(redis_connection().get(config_cache_key(name)))
        except RedisError:
            hit = None
        published = Published(*hit) if hit else _published_db(name)
        config_memo.put(name, published)
    return published


async def _published_async(name: str) -> Published:
    published = config_memo.get(name)
    if published is None:
        try:
            hit = config_cache_parse(await _redis().get(config_cache_key(name)))
        except (RedisError, OSError):
            hit = None
        published = Published(*hit) if hit else await sync_to_async(_published_db)(name)
        config_memo.put(name, published)
    return published


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


def _matches(published: Published, known: set[str]) -> bool:
    return published.etag in known or "*" in known


# --- GET /api/v1/config/{scene}/ ----------------------------------------------------------------------------


async def config_view_async(request, name: str) -> HttpResponse:
    """``GET /api/v1/config/{scene}/``: the published config with its ETag; 304 when ``If-None-Match`` matches;
    with ``?wait=N`` (N ≤ 60) a matching request is held until a new revision is published or N seconds pass."""
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    try:
        wait = _parse_wait(request.GET.get("wait"))
        known = _etags(request.headers.get("If-None-Match"))
        if not (wait and known):
            await _authorize_async(request.headers.get("Authorization"), name)
            published = await _published_async(name)
            return _not_modified(published.etag) if _matches(published, known) else _config_response(published)
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
        await _authorize_async(request.headers.get("Authorization"), name)
        published = await _published_async(name)
        while _matches(published, known):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return _not_modified(published.etag)
            try:
                await asyncio.wait_for(waiter.event.wait(), remaining)
            except TimeoutError:
                # The last look: a notification may have been lost (Redis down); the database is the truth.
                published = await sync_to_async(_published_db)(name)
                continue
            change = waiter.take()
            if change is None:
                published = await sync_to_async(_published_db)(name)
            elif change.revision > published.revision:
                published = Published(revision=change.revision, etag=change.etag, body=change.body)
        return _config_response(published)
    finally:
        listener.remove(name, waiter)


def config_view_sync(request, name: str) -> HttpResponse:
    """The same endpoint under WSGI."""
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    try:
        wait = _parse_wait(request.GET.get("wait"))
        known = _etags(request.headers.get("If-None-Match"))
        if not (wait and known):
            _authorize(request.headers.get("Authorization"), name)
            published = _published(name)
            return _not_modified(published.etag) if _matches(published, known) else _config_response(published)
        return _long_poll_sync(request, name, wait, known)
    except Refused as refused:
        return refused.response


def _long_poll_sync(request, name: str, wait: float, known: set[str]) -> HttpResponse:
    deadline = time.monotonic() + wait
    connection = redis_connection()
    channel = channel_prefix(int(connection.connection_pool.connection_kwargs.get("db", 0) or 0)) + name
    pubsub = connection.pubsub(ignore_subscribe_messages=True)
    try:
        try:
            pubsub.subscribe(channel)
        except RedisError as exc:
            logger.warning("long poll without notifications (%s): re-reading the database every second", exc)
            pubsub.close()
            pubsub = None
        _authorize(request.headers.get("Authorization"), name)
        published = _published(name)
        while _matches(published, known):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _not_modified(published.etag)
            message = None
            if pubsub is not None:
                try:
                    message = pubsub.get_message(timeout=remaining)
                except RedisError:
                    pubsub.close()
                    pubsub = None
            else:
                time.sleep(min(1.0, remaining))
            change = _change_of(message)
            if change is not None and change.revision > published.revision:
                published = change
            elif message is None:
                published = _published_db(name)
        return _config_response(published)
    finally:
        if pubsub is not None:
            pubsub.close()


def _change_of(message: dict | None) -> Published | None:
    if not message or message.get("type") != "message":
        return None
    try:
        data = json.loads(message["data"])
        return Published(revision=int(data["revision"]), etag=str(data["etag"]), body=config_body(data["content"]))
    except (ValueError, KeyError, TypeError):
        return None


# --- GET /api/v1/scenes/{scene}/versions/{v}/artifact/ -------------------------------------------------------


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


async def artifact_view_async(request, name: str, version: int) -> HttpResponse:
    """``GET /api/v1/scenes/{scene}/versions/{v}/artifact/``: the model bytes, the sha256 in the ETag."""
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    try:
        artifact, checksums = await sync_to_async(_artifact_lookup)(request.headers.get("Authorization"), name, version)
    except Refused as refused:
        return refused.response
    etag = f'"{artifact.sha256}"'
    if etag in _etags(request.headers.get("If-None-Match")):
        return _not_modified(etag)
    use_cache = True
    try:
        if not cache_meta_matches(artifact, await _redis().get(artifact_meta_key(artifact.sha256))):
            await sync_to_async(artifact_cache_warm)(artifact)
    except ArtifactCorrupt:
        return _corrupt(version)
    except (RedisError, OSError) as exc:
        logger.warning("artifact cache unavailable (%s); streaming %s from the database", exc, artifact.sha256[:12])
        use_cache = False
    return _artifact_response(_artifact_chunks(artifact, checksums, use_cache=use_cache), artifact, name, version, etag)


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


def artifact_view_sync(request, name: str, version: int) -> HttpResponse:
    """The same endpoint under WSGI."""
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    try:
        artifact, checksums = _artifact_lookup(request.headers.get("Authorization"), name, version)
    except Refused as refused:
        return refused.response
    etag = f'"{artifact.sha256}"'
    if etag in _etags(request.headers.get("If-None-Match")):
        return _not_modified(etag)
    connection = redis_connection()
    try:
        if not cache_meta_matches(artifact, connection.get(artifact_meta_key(artifact.sha256))):
            artifact_cache_warm(artifact, connection=connection)
    except ArtifactCorrupt:
        return _corrupt(version)
    except RedisError as exc:
        logger.warning("artifact cache unavailable (%s); streaming %s from the database", exc, artifact.sha256[:12])
        connection = None
    return _artifact_response(_artifact_chunks_sync(artifact, checksums, connection), artifact, name, version, etag)


def _artifact_chunks_sync(artifact: Artifact, checksums: list[str], connection):
    repairs: list[tuple[int, bytes]] = []
    for index, checksum in enumerate(checksums):
        data = None
        if connection is not None:
            try:
                data = connection.get(artifact_chunk_key(artifact.sha256, index))
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
    for index, data in repairs:
        try:
            connection.set(artifact_chunk_key(artifact.sha256, index), data, ex=CACHE_TTL_SECONDS)
        except RedisError as exc:
            logger.warning("could not repair cached chunk %s of %s: %s", index, artifact.sha256[:12], exc)
