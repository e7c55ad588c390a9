"""``GET /api/v1/config/{scene}/``: the config a client polls, with ETag / 304 and long-poll ``?wait=N``.

One core, three doors: ``config_answer`` (async) serves the Django async view and the ASGI door
(``apps.deploy.longpoll``), which answers every poll of the config in the event loop; ``config_answer_sync``
serves the WSGI view.

Where a poll's answer comes from: the process's memo of published configs (``configs.config_memo``), else the
revision-guarded copy in Redis, else the database (the truth), so a client token's poll normally does no I/O.
Answers are ``configs.Answer``s built once per revision (``Published.ok``, ``Published.not_modified``).

A long poll (``?wait=N`` with a matching ``If-None-Match``) is authorized when it starts, then held in the
process's single Redis pub/sub listener (``notify.ConfigListener``) as a ``Waiter``: a future and a timer,
no thread (the ASGI door adds one small task that watches the connection). A publication resolves every waiter of the scene with the same ``Published``; at the wake a client
token is checked against the in-memory set of revoked tokens only (``selectors.client_token_is_revoked``), so
waking ten thousand polls costs no query. A poll whose client goes away is removed at once (``gone``). Under
WSGI a long poll necessarily holds its worker thread; it waits on a pub/sub subscription of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time

from asgiref.sync import sync_to_async
from django.http import HttpResponse, HttpResponseNotAllowed, HttpResponseNotModified
from redis.exceptions import RedisError

from mlabsite.auth_throttle import client_address
from mlabsite.locks import redis_connection

from ..configs import Answer, Published, config_body, config_memo, published_db, published_now
from ..notify import Wake, channel_prefix, config_listener
from ..selectors import client_token_forget, client_token_is_revoked
from .access import Refused, authorize, authorize_async, coalesce, token_digest, unauthenticated

logger = logging.getLogger(__name__)

WAIT_MAX_SECONDS = 60


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


def parse_etags(header: str | None) -> tuple[str, ...]:
    """The ETags a client has (a tuple: clients send one, and a held poll keeps it)."""
    if not header:
        return ()
    return tuple(tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip())


def _matches(published: Published, known: tuple[str, ...]) -> bool:
    return published.etag in known or "*" in known


def _no_config(name: str) -> Refused:
    return Refused(404, f"Scene {name!r} has no published deployment yet.")


def published_or_404(name: str) -> Published:
    """The published config (memo, Redis, database); Refused 404 when the scene has published nothing."""
    published = published_now(name)
    if published is None:
        raise _no_config(name)
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
    gone: asyncio.Future | None = None,
) -> Answer | None:
    """The answer to a config poll from the client at ``address``. ``run_sync`` runs database work (cache
    misses, user tokens). ``gone``, when given, completes when the client goes away: a long poll held then
    ends at once with no answer (None)."""
    try:
        seconds = parse_wait(wait)
        known = parse_etags(if_none_match)
        if not (seconds and known):
            await authorize_async(authorization, name, address=address, run_sync=run_sync)
            published = await _published_async(name, run_sync)
            return published.not_modified if _matches(published, known) else published.ok
        return await _long_poll(authorization, address, name, seconds, known, run_sync, gone)
    except Refused as refused:
        return _refused(refused)


async def _published_async(name: str, run_sync) -> Published:
    published = config_memo.get(name)
    if published is None:
        # The memo is empty or old: one thread hop reads Redis (else the database) and refills it.
        published = await coalesce(("config", name), lambda: run_sync(published_now)(name))
        if published is None:
            raise _no_config(name)
    return published


async def _long_poll(
    authorization, address: str, name: str, wait: float, known: tuple[str, ...], run_sync, gone
) -> Answer | None:
    listener = config_listener()
    digest = token_digest(authorization)
    # Wait first, then look: a change published between the look and the wait cannot be missed.
    waiter = listener.add(name, known=known, digest=digest)
    waiter.timer = asyncio.get_running_loop().call_later(wait, waiter.resolve, Wake.TIMEOUT)
    if gone is not None:
        gone.add_done_callback(waiter.left)
    try:
        await authorize_async(authorization, name, address=address, run_sync=run_sync)
        published = await _published_async(name, run_sync)
        waiter.revision = published.revision
        outcome = None
        while _matches(published, known):
            if outcome is not None:
                waiter.rearm()  # the last outcome did not end the poll
            outcome = await waiter.future
            if isinstance(outcome, Published):
                published = outcome if outcome.revision > published.revision else published
            elif outcome is Wake.LEFT:
                return None
            elif outcome is Wake.TIMEOUT:
                return await _last_look(authorization, address, name, digest, known, run_sync)
            elif outcome is Wake.REVOKED:
                raise unauthenticated("Invalid token.")
            elif outcome is Wake.OUT_OF_SCOPE:
                raise Refused(403, f"This client token cannot read scene {name!r}.")
            else:  # Wake.RECHECK: a user token, after the listener was deaf for a while
                await _reauthorize_once(authorization, address, name, run_sync)
                published = await _published_async(name, run_sync)
        # Authorized when the poll started; a client token may have been revoked since. Checked in memory
        # (revocations are announced to every listener, and re-checked when one subscribes again), so a
        # publication waking ten thousand polls costs no query. User tokens (people, rarely polling) ask again.
        if digest is None:
            await authorize_async(authorization, name, address=address, run_sync=run_sync)
        elif client_token_is_revoked(digest):
            raise unauthenticated("Invalid token.")
        return published.ok
    finally:
        listener.remove(waiter)
        if gone is not None:
            gone.remove_done_callback(waiter.left)


async def _last_look(
    authorization, address: str, name: str, digest: str | None, known: tuple[str, ...], run_sync
) -> Answer:
    """The answer of a poll whose time is up: 304 unless a change was missed (a notification lost while Redis
    was away), which is looked for in the memo, Redis or the database, a look shared by the polls of the scene."""
    if digest is not None and client_token_is_revoked(digest):
        raise unauthenticated("Invalid token.")
    published = await _published_async(name, run_sync)
    if _matches(published, known):
        return published.not_modified
    # A change nobody heard of: the token's revocation may have gone unheard too. Ask the database.
    await _reauthorize_once(authorization, address, name, run_sync)
    return published.ok


async def _reauthorize_once(authorization, address: str, name: str, run_sync) -> None:
    """``_reauthorize``, once for all the polls of this token and scene asking at the same time. (Not a closure
    in ``_long_poll``: its cells would be kept by every held poll.)"""
    await coalesce(("recheck", authorization, name), lambda: _reauthorize(authorization, address, name, run_sync))


async def _reauthorize(authorization, address: str, name: str, run_sync) -> None:
    """Authorize again from the database (the cached scope of a client token is dropped first)."""
    digest = token_digest(authorization)
    if digest is not None:
        client_token_forget(digest)
    await authorize_async(authorization, name, address=address, run_sync=run_sync)


def _response(answer: Answer) -> HttpResponse:
    if answer.status == 304:
        return HttpResponseNotModified(headers=answer.headers)
    return HttpResponse(answer.body, status=answer.status, headers=answer.headers)


async def config_view_async(request, name: str) -> HttpResponse:
    """``GET /api/v1/config/{scene}/``: the published config with its ETag; 304 when ``If-None-Match`` matches;
    with ``?wait=N`` (N ≤ 60) a matching request is held until a new revision is published or N seconds pass."""
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    answer = await config_answer(**_poll_of(request, name))
    assert answer is not None  # only a poll given ``gone`` ends without an answer
    return _response(answer)


def _poll_of(request, name: str) -> dict:
    """What the core needs from a Django request, read straight from its environ (no headers mapping, and no
    query dictionary unless there is a query): every plain poll of every client passes here."""
    meta = request.META
    return {
        "authorization": meta.get("HTTP_AUTHORIZATION"),
        "if_none_match": meta.get("HTTP_IF_NONE_MATCH"),
        "wait": request.GET.get("wait") if meta.get("QUERY_STRING") else None,
        "name": name,
        "address": client_address(meta),
    }


# --- sync (WSGI) -------------------------------------------------------------------------------------------


def config_answer_sync(
    *, authorization: str | None, if_none_match: str | None, wait: str | None, name: str, address: str
) -> Answer:
    try:
        seconds = parse_wait(wait)
        known = parse_etags(if_none_match)
        if not (seconds and known):
            authorize(authorization, name, address=address)
            published = published_or_404(name)
            return published.not_modified if _matches(published, known) else published.ok
        return _long_poll_sync(authorization, address, name, seconds, known)
    except Refused as refused:
        return _refused(refused)


def _long_poll_sync(authorization, address: str, name: str, wait: float, known: tuple[str, ...]) -> Answer:
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
        published = published_or_404(name)
        while _matches(published, known):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return published.not_modified
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
                published = published_db(name) or published
        # The token may have been revoked while the poll waited (WSGI holds a thread per poll anyway).
        digest = token_digest(authorization)
        if digest is not None:
            client_token_forget(digest)
        authorize(authorization, name, address=address)
        return published.ok
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
    return _response(config_answer_sync(**_poll_of(request, name)))
