"""``GET /api/v1/config/{scene}/``: the config a client polls, with ETag / 304 and long-poll ``?wait=N``.

One core, three doors: ``config_answer`` (async) serves the Django async view and the ASGI long-poll door
(``apps.deploy.longpoll``); ``config_answer_sync`` serves the WSGI view.

Where a poll's answer comes from: the process's memo of published configs (``configs.config_memo``), else the
revision-guarded copy in Redis, else the database (the truth), so a client token's poll normally does no I/O.
A long poll (``?wait=N`` with a matching ``If-None-Match``) waits on the process's single Redis pub/sub
listener (``notify.ConfigListener``): under ASGI, a thousand waiting polls are a thousand awaiting coroutines,
not threads. A cancelled wait (the client went away) removes its waiter in ``finally``. Under WSGI a long poll
necessarily holds its worker thread; it waits on a pub/sub subscription of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.http import HttpResponse, HttpResponseNotAllowed, HttpResponseNotModified
from redis.exceptions import RedisError

from mlabsite.auth_throttle import client_address
from mlabsite.locks import redis_bytes, redis_connection

from ..configs import Published, config_body, config_cache_key, config_cache_parse, config_cache_set, config_memo
from ..models import ConfigEntry
from ..notify import channel_prefix, config_listener
from ..selectors import client_token_forget, client_token_is_revoked
from .access import Refused, authorize, authorize_async, coalesce, token_digest, unauthenticated

logger = logging.getLogger(__name__)

WAIT_MAX_SECONDS = 60


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def _ok(published: Published) -> Answer:
    headers = {"Content-Type": "application/json", "ETag": published.etag, "Cache-Control": "no-cache"}
    return Answer(200, headers, published.body)


def _not_modified(etag: str) -> Answer:
    return Answer(304, {"ETag": etag, "Cache-Control": "no-cache"})


def _refused(refused: Refused) -> Answer:
    return Answer(
        refused.status, {"Content-Type": "application/json", **refused.headers}, json.dumps(refused.payload).encode()
    )


def parse_wait(raw: str | None) -> float:
    if raw is None or raw == "":
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        wait = math.nan
    if not math.isfinite(wait) or not 0 <= wait <= WAIT_MAX_SECONDS:
        raise Refused(400, {"wait": [f"Must be a number of seconds from 0 to {WAIT_MAX_SECONDS}."]})
    return wait


def parse_etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _matches(published: Published, known: set[str]) -> bool:
    return published.etag in known or "*" in known


def published_db(name: str) -> Published:
    """The published config as the database has it (the truth), copied into Redis and the memo."""
    row = ConfigEntry.objects.filter(scene__name=name).values_list("revision", "etag", "content").first()
    if row is None or not row[0]:
        raise Refused(404, f"Scene {name!r} has no published deployment yet.")
    published = Published(revision=row[0], etag=row[1], body=config_body(row[2]))
    try:
        config_cache_set(
            redis_connection(), scene=name, revision=published.revision, etag=published.etag, body=published.body
        )
    except RedisError as exc:
        logger.warning("could not cache the config of %s: %s", name, exc)
    config_memo.put(name, published)
    return published


def published_now(name: str) -> Published:
    """The published config: from the memo, else Redis (one GET), else the database."""
    published = config_memo.get(name)
    if published is None:
        try:
            hit = config_cache_parse(redis_bytes(redis_connection().get(config_cache_key(name))))
        except RedisError:
            hit = None
        if hit is None:
            return published_db(name)
        published = Published(*hit)
        config_memo.put(name, published)
    return published


# --- async -------------------------------------------------------------------------------------------------


async def config_answer(
    *,
    authorization: str | None,
    if_none_match: str | None,
    wait: str | None,
    name: str,
    address: str,
    run_sync=sync_to_async,
) -> Answer:
    """The answer to a config poll from the client at ``address``. ``run_sync`` runs database work (cache
    misses, user tokens)."""
    try:
        seconds = parse_wait(wait)
        known = parse_etags(if_none_match)
        if not (seconds and known):
            await authorize_async(authorization, name, address=address, run_sync=run_sync)
            published = await _published_async(name, run_sync)
            return _not_modified(published.etag) if _matches(published, known) else _ok(published)
        return await _long_poll(authorization, address, name, seconds, known, run_sync)
    except Refused as refused:
        return _refused(refused)


async def _published_async(name: str, run_sync) -> Published:
    published = config_memo.get(name)
    if published is None:
        # The memo is empty or old: one thread hop reads Redis (else the database) and refills it.
        published = await coalesce(("config", name), lambda: run_sync(published_now)(name))
    return published


async def _long_poll(authorization, address: str, name: str, wait: float, known: set[str], run_sync) -> Answer:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    listener = config_listener()
    digest = token_digest(authorization)
    # Wait first, then look: a change published between the look and the wait cannot be missed.
    waiter = listener.add(name, token_digest=digest)
    try:
        await authorize_async(authorization, name, address=address, run_sync=run_sync)
        published = await _published_async(name, run_sync)
        while _matches(published, known):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return _not_modified(published.etag)
            try:
                await asyncio.wait_for(waiter.event.wait(), remaining)
            except TimeoutError:
                # The last look: a notification may have been lost (Redis down); the database is the truth,
                # for the config and for the token.
                await _reauthorize(authorization, address, name, digest, run_sync)
                published = await run_sync(published_db)(name)
                continue
            change = waiter.take()
            if change is None:  # a re-check: the listener reconnected, or this poll's token was revoked
                await _reauthorize(authorization, address, name, digest, run_sync)
                published = await run_sync(published_db)(name)
            elif change.revision > published.revision:
                published = change
        # The token may have been revoked while the poll waited: checked in memory (the revocations the
        # listener heard), so a publication waking a thousand polls costs no query.
        if digest is not None and client_token_is_revoked(digest):
            raise unauthenticated("Invalid token.")
        if digest is None:
            await authorize_async(authorization, name, address=address, run_sync=run_sync)  # user tokens: rare
        return _ok(published)
    finally:
        listener.remove(name, waiter)


async def _reauthorize(authorization, address: str, name: str, digest: str | None, run_sync) -> None:
    """Authorize again from the database (the cached scope of a client token is dropped first)."""
    if digest is not None:
        client_token_forget(digest)
    await authorize_async(authorization, name, address=address, run_sync=run_sync)


def _response(answer: Answer) -> HttpResponse:
    response = HttpResponseNotModified() if answer.status == 304 else HttpResponse(answer.body, status=answer.status)
    for header, value in answer.headers.items():
        response.headers[header] = value
    return response


async def config_view_async(request, name: str) -> HttpResponse:
    """``GET /api/v1/config/{scene}/``: the published config with its ETag; 304 when ``If-None-Match`` matches;
    with ``?wait=N`` (N ≤ 60) a matching request is held until a new revision is published or N seconds pass."""
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    answer = await config_answer(
        authorization=request.headers.get("Authorization"),
        if_none_match=request.headers.get("If-None-Match"),
        wait=request.GET.get("wait"),
        name=name,
        address=client_address(request.META),
    )
    return _response(answer)


# --- sync (WSGI) -------------------------------------------------------------------------------------------


def config_answer_sync(
    *, authorization: str | None, if_none_match: str | None, wait: str | None, name: str, address: str
) -> Answer:
    try:
        seconds = parse_wait(wait)
        known = parse_etags(if_none_match)
        if not (seconds and known):
            authorize(authorization, name, address=address)
            published = published_now(name)
            return _not_modified(published.etag) if _matches(published, known) else _ok(published)
        return _long_poll_sync(authorization, address, name, seconds, known)
    except Refused as refused:
        return _refused(refused)


def _long_poll_sync(authorization, address: str, name: str, wait: float, known: set[str]) -> Answer:
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
        authorize(authorization, name, address=address)
        published = published_now(name)
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
                published = published_db(name)
        # The token may have been revoked while the poll waited (WSGI holds a thread per poll anyway).
        digest = token_digest(authorization)
        if digest is not None:
            client_token_forget(digest)
        authorize(authorization, name, address=address)
        return _ok(published)
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


def config_view_sync(request, name: str) -> HttpResponse:
    """The same endpoint under WSGI."""
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    answer = config_answer_sync(
        authorization=request.headers.get("Authorization"),
        if_none_match=request.headers.get("If-None-Match"),
        wait=request.GET.get("wait"),
        name=name,
        address=client_address(request.META),
    )
    return _response(answer)
