"""Telling long-polling clients that a scene's config changed, over Redis pub/sub.

The publisher sends ``{scene, revision, etag, content}`` on the scene's channel after its commit. Each web
process keeps ONE pub/sub connection per event loop (``ConfigListener``) and fans messages out to the polls
waiting in it, so a thousand waiting polls cost a thousand small objects, not a thousand connections or
threads. Notifications only shorten the wait: a poll re-reads the database when it starts waiting, whenever
the listener reconnects, and when its time is up, so a lost message delays a client, never misleads it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from django.conf import settings
from redis import Redis
from redis.exceptions import RedisError

from .configs import Published, config_body, config_memo
from .selectors import client_token_revoked

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
    """Tell every process that the client token with this digest was revoked (its long polls answer 401 when
    they wake). Returns how many listeners got it (0 when Redis failed: logged; polls then re-check the
    database when their wait ends)."""
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


@dataclass(eq=False)
class Waiter:
    """One waiting poll. ``change`` holds the newest change seen; None with ``event`` set means "re-check"."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    change: Published | None = None
    token_digest: str | None = None  # the client token of the poll, woken when it is revoked

    def wake(self, change: Published | None) -> None:
        if change is not None and (self.change is None or change.revision > self.change.revision):
            self.change = change
        self.event.set()

    def take(self) -> Published | None:
        change, self.change = self.change, None
        self.event.clear()
        return change


class ConfigListener:
    """The process's (event loop's) single subscription to config changes of every scene."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.waiters: dict[str, set[Waiter]] = {}
        self.task: asyncio.Task | None = None
        self.subscribed = asyncio.Event()

    def add(self, scene: str, *, token_digest: str | None = None) -> Waiter:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run(), name="mlab-config-listener")
        waiter = Waiter(token_digest=token_digest)
        self.waiters.setdefault(scene, set()).add(waiter)
        logger.debug("poll of %s waiting; %d polls waiting", scene, self.waiting)
        return waiter

    def remove(self, scene: str, waiter: Waiter) -> None:
        waiters = self.waiters.get(scene)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self.waiters[scene]
        logger.debug("poll of %s left; %d polls waiting", scene, self.waiting)

    @property
    def waiting(self) -> int:
        return sum(len(waiters) for waiters in self.waiters.values())

    def _wake_all(self) -> None:
        for waiters in self.waiters.values():
            for waiter in waiters:
                waiter.wake(None)

    def _revoked(self, data: bytes | str) -> None:
        digest = data.decode() if isinstance(data, bytes) else data
        client_token_revoked(digest)
        # Waiters of that token re-check now rather than on their next notification.
        for waiters in self.waiters.values():
            for waiter in waiters:
                if waiter.token_digest == digest:
                    waiter.wake(None)

    def _dispatch(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            scene, revision, etag, content = message["scene"], message["revision"], message["etag"], message["content"]
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed config notification")
            return
        change = Published(revision=int(revision), etag=str(etag), body=config_body(content))
        config_memo.put(scene, change)
        for waiter in self.waiters.get(scene, ()):
            waiter.wake(change)

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
                    if message["type"] == "psubscribe":
                        self.subscribed.set()
                        pause = 0.1
                        self._wake_all()  # changes made while we were not subscribed: everyone re-checks
                    elif message["type"] == "pmessage":
                        self._dispatch(message["data"])
                    elif message["type"] == "message":
                        self._revoked(message["data"])
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
            self._wake_all()
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)


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
