"""Telling long-polling clients that a scene's config changed, over Redis pub/sub.

The publisher sends ``{scene, revision, etag, content}`` on the scene's channel after its commit. Each web
process keeps ONE pub/sub connection per event loop (``ConfigListener``) and fans messages out to the polls
held in it (``Waiter``s), so a thousand held polls cost a thousand small objects, not a thousand connections,
threads or tasks. A notification is turned into a ``Published`` once per process, and every waiter of its
scene is handed that same object: the answer is built once per revision, not once per poll.

Notifications only shorten the wait. Whenever the listener (re)subscribes it catches up from the database:
one read of the published config per scene with waiters, one lookup per distinct client token among them
(a revocation announced while it was not listening was missed), then it wakes whoever is behind. A poll whose
time is up looks once more (memo, Redis, database), so a lost message delays a client, never misleads it.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import os
import weakref
from dataclasses import dataclass

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection
from redis import Redis
from redis.exceptions import RedisError

from .configs import Published, config_body, config_memo, published_db
from .selectors import client_token_forget, client_token_revoked, client_token_scenes

logger = logging.getLogger(__name__)

CHANNEL_PREFIX = "mlab:config-changed"


def _db_of(connection_kwargs: dict) -> int:
    return int(connection_kwargs.get("db", 0) or 0)


def channel_prefix(db: int) -> str:
    # Pub/sub channels are global across Redis databases: the database number keeps apart Mlab
    # instances sharing one server.
    return f"{CHANNEL_PREFIX}:db{db}:"


def revocation_channel(db: int) -> str:
    # Not under the config channels' prefix: the listener's pattern subscription must not see it.
    return f"mlab:client-token-revoked:db{db}"


def token_revoked_notify(*, connection: Redis, digest: str) -> int:
    """Tell every process that the client token with this digest was revoked (its long polls answer 401 at
    once). Returns how many listeners got it (0 when Redis failed: logged; listeners re-check every token
    they hold when they subscribe again)."""
    try:
        return connection.publish(revocation_channel(_db_of(connection.connection_pool.connection_kwargs)), digest)
    except RedisError as exc:
        logger.warning("could not announce a revoked client token: %s", exc)
        return 0


def config_notify(*, connection: Redis, scene: str, revision: int, etag: str, content: dict) -> int:
    """Publish a config change; returns how many listeners got it (0 when Redis failed: logged)."""
    channel = channel_prefix(_db_of(connection.connection_pool.connection_kwargs)) + scene
    message = json.dumps({"scene": scene, "revision": revision, "etag": etag, "content": content})
    try:
        return connection.publish(channel, message)
    except RedisError as exc:
        logger.warning("could not notify pollers of %s r%s: %s", scene, revision, exc)
        return 0


class Wake(enum.Enum):
    """Why a waiter was woken, when not by a new config (a ``Published``)."""

    TIMEOUT = "timeout"  # its time is up
    LEFT = "left"  # the client went away
    REVOKED = "revoked"  # its client token was revoked (announced, or found gone when catching up)
    OUT_OF_SCOPE = "out of scope"  # its client token no longer reads the scene (found when catching up)
    RECHECK = "recheck"  # a user token's poll, after the listener caught up: authorize it again


class Waiter:
    """One held long poll: what its client has, its client token, and the future its poll awaits. The future
    is resolved with a ``Published`` (news for the client) or a ``Wake``; the first resolution wins."""

    __slots__ = ("scene", "known", "any_etag", "revision", "digest", "future", "timer")

    def __init__(self, scene: str, known: tuple[str, ...], digest: str | None, future: asyncio.Future) -> None:
        self.scene = scene
        self.known = known  # the ETags the client has (If-None-Match)
        self.any_etag = "*" in known
        self.revision = 0  # of the published config its poll compared with (0 until it has looked)
        self.digest = digest  # its client token's digest; None for a user token
        self.future = future
        self.timer: asyncio.TimerHandle | None = None

    def behind(self, published: Published) -> bool:
        """Whether ``published`` is news to this poll's client."""
        return published.revision > self.revision and not self.any_etag and published.etag not in self.known

    def resolve(self, outcome: Published | Wake) -> None:
        if not self.future.done():
            self.future.set_result(outcome)

    def left(self, _gone: object = None) -> None:
        """The client went away (a done-callback of whatever watches the connection)."""
        self.resolve(Wake.LEFT)

    def rearm(self) -> None:
        """Wait again (after an outcome that does not end the poll)."""
        self.future = self.future.get_loop().create_future()


@dataclass
class CaughtUp:
    """What a catch-up read from the database: the published config per scene, the scenes per client token."""

    published: dict[str, Published | None]
    scopes: dict[str, frozenset[str] | None]
    queries: int


def caught_up(scenes: list[str], digests: list[str]) -> CaughtUp:
    """One read of the published config per scene, one lookup per client token (its cached scope dropped
    first): what a listener needs after it was deaf for a while. Runs in a worker thread."""
    queries = 0

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    close_old_connections()
    try:
        with connection.execute_wrapper(count):
            published = {scene: published_db(scene) for scene in scenes}
            scopes = {}
            for digest in digests:
                client_token_forget(digest)
                scopes[digest] = client_token_scenes(digest=digest)
    finally:
        close_old_connections()
    return CaughtUp(published, scopes, queries)


class ConfigListener:
    """The process's (event loop's) single subscription to config changes of every scene, and the polls held
    in it, by scene and by client token."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.by_scene: dict[str, set[Waiter]] = {}
        self.by_token: dict[str, set[Waiter]] = {}
        self.waiting = 0
        self.task: asyncio.Task | None = None
        self.subscribed = asyncio.Event()
        self.catching_up: set[asyncio.Task] = set()
        self.pid = os.getpid()

    def add(self, scene: str, *, known: tuple[str, ...], digest: str | None = None) -> Waiter:
        """Hold a poll of ``scene`` whose client has the ETags ``known``: it is woken by the first config of
        the scene it does not have (set ``revision`` once the poll has looked at the published one)."""
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._run(), name="mlab-config-listener")
        waiter = Waiter(scene, known, digest, loop.create_future())
        self.by_scene.setdefault(scene, set()).add(waiter)
        if digest is not None:
            self.by_token.setdefault(digest, set()).add(waiter)
        self.waiting += 1
        logger.debug("poll of %s waiting; %d polls waiting in process %d", scene, self.waiting, self.pid)
        return waiter

    def remove(self, waiter: Waiter) -> None:
        if waiter.timer is not None:
            waiter.timer.cancel()
        if _discard(self.by_scene, waiter.scene, waiter):
            self.waiting -= 1
            if waiter.digest is not None:
                _discard(self.by_token, waiter.digest, waiter)
            logger.debug("poll of %s left; %d polls waiting in process %d", waiter.scene, self.waiting, self.pid)

    def _dispatch(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            scene, revision, etag, content = message["scene"], message["revision"], message["etag"], message["content"]
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed config notification")
            return
        change = config_memo.put(scene, Published(revision=int(revision), etag=str(etag), body=config_body(content)))
        for waiter in self.by_scene.get(scene, ()):
            if waiter.behind(change):
                waiter.resolve(change)

    def _revoked(self, data: bytes | str) -> None:
        digest = data.decode() if isinstance(data, bytes) else data
        client_token_revoked(digest)
        for waiter in self.by_token.get(digest, ()):
            waiter.resolve(Wake.REVOKED)

    def _subscribed(self) -> None:
        """(Re)subscribed: changes and revocations made while we were not listening may have been missed."""
        self.subscribed.set()
        held = [waiter for waiters in self.by_scene.values() for waiter in waiters]
        if held:
            task = asyncio.get_running_loop().create_task(self._catch_up(held), name="mlab-config-catch-up")
            self.catching_up.add(task)
            task.add_done_callback(self.catching_up.discard)

    async def _catch_up(self, held: list[Waiter]) -> None:
        scenes = sorted({waiter.scene for waiter in held})
        digests = sorted({waiter.digest for waiter in held if waiter.digest is not None})
        try:
            found = await sync_to_async(caught_up, thread_sensitive=False)(scenes, digests)
        except Exception as exc:  # the database is out of reach too: each poll looks again when its time is up
            logger.warning("could not catch up with the published configs: %s", exc)
            return
        woken = 0
        for waiter in held:
            if waiter.future.done():
                continue
            outcome = _catch_up_outcome(waiter, found)
            if outcome is not None:
                waiter.resolve(outcome)
                woken += 1
        logger.info(
            "caught up after subscribing: %d scene(s) read and %d client token(s) re-checked in %d queries; "
            "%d of %d polls answered (process %d)",
            len(scenes),
            len(digests),
            found.queries,
            woken,
            len(held),
            self.pid,
        )

    async def _run(self) -> None:
        task = asyncio.current_task()
        assert task is not None  # _run is the body of the listener task (create_task above)
        pause = 0.1
        while True:
            client = aioredis.from_url(self.url, socket_connect_timeout=5, health_check_interval=30)
            pubsub = client.pubsub()
            try:
                db = _db_of(client.connection_pool.connection_kwargs)
                await pubsub.psubscribe(channel_prefix(db) + "*")
                await pubsub.subscribe(revocation_channel(db))
                while True:
                    # A bounded read, and a look at our own cancellation after each: redis-py's reads can
                    # swallow a cancellation and go on waiting, which would keep the event loop from closing.
                    message = await pubsub.get_message(timeout=1.0)
                    if task.cancelling():
                        raise asyncio.CancelledError
                    if message is None:
                        continue
                    if message["type"] == "pmessage":
                        self._dispatch(message["data"])
                    elif message["type"] == "message":
                        self._revoked(message["data"])
                    elif message["type"] == "subscribe":  # the second of our two subscriptions: both hold
                        pause = 0.1
                        self._subscribed()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if task.cancelling():
                    raise asyncio.CancelledError from exc
                logger.warning("config listener lost Redis (%s); reconnecting in %.1fs", exc, pause)
            finally:
                self.subscribed.clear()
                try:
                    # Bounded: closing a connection cut in the middle of a command can wait forever.
                    await asyncio.wait_for(_close(pubsub, client), timeout=2)
                except Exception:  # the connection is already gone; nothing to tidy
                    pass
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)


def _catch_up_outcome(waiter: Waiter, found: CaughtUp) -> Published | Wake | None:
    """What a held poll is told after a catch-up; None: it waits on."""
    if waiter.digest is None:
        return Wake.RECHECK  # a user token: its poll authorizes again (rare: people, not client processes)
    scenes = found.scopes.get(waiter.digest)
    if scenes is None:
        client_token_revoked(waiter.digest)
        return Wake.REVOKED
    if waiter.scene not in scenes:
        return Wake.OUT_OF_SCOPE
    published = found.published.get(waiter.scene)
    return published if published is not None and waiter.behind(published) else None


def _discard(index: dict[str, set[Waiter]], key: str, waiter: Waiter) -> bool:
    waiters = index.get(key)
    if waiters is None or waiter not in waiters:
        return False
    waiters.discard(waiter)
    if not waiters:
        del index[key]
    return True


async def _close(pubsub, client) -> None:
    await pubsub.aclose()
    await client.aclose()


_listeners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ConfigListener] = weakref.WeakKeyDictionary()


def config_listener() -> ConfigListener:
    """The listener of the running event loop (uvicorn runs one loop per process)."""
    loop = asyncio.get_running_loop()
    listener = _listeners.get(loop)
    if listener is None:
        listener = _listeners[loop] = ConfigListener(settings.REDIS_URL)
    return listener
