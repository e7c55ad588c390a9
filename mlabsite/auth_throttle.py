"""Throttling of failed token authentications, per client address, counted in Redis.

Every door that takes a token (the DRF API, the config and artifact endpoints) asks ``auth_failures_check``
before it looks the token up, and calls ``auth_failure_record`` when the token matched nothing. Once an address
has presented MLAB_AUTH_FAILURE_LIMIT different wrong tokens within MLAB_AUTH_FAILURE_WINDOW_SECONDS (a fixed
window opened by its first failure), every token it presents is answered 429 with Retry-After until the window
closes, without looking the token up: a guesser learns nothing more, right or wrong. The same wrong token sent
again counts once: a client still polling with a revoked token is not a guesser, and must not lock out the
other clients of its host. Successful authentications are neither counted nor delayed. The failures live in
Redis (a set of the wrong tokens' digest prefixes per address) so that every web process shares them.

If Redis cannot be reached the check lets requests through (logged): a Redis outage must not lock every API
client out, and the token lookup itself still refuses bad tokens.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

from .locks import redis_connection

logger = logging.getLogger(__name__)

FAILURES_PREFIX = "mlab:auth-failures:"

# Add a failure to the address's set; the first one opens the window (EXPIRE NX needs Redis 7, the embedded
# one is 6.2). A script, so that no failure is ever stored without the window's expiry.
_RECORD = """
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
"""


class AuthThrottled(Exception):
    """Too many failed authentications from this address; ``retry_after`` seconds until the window closes."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed authentications from this address; retry in {retry_after} s.")
        self.retry_after = retry_after


def client_address(meta) -> str:
    """The client's address as the server saw it (``REMOTE_ADDR``). Behind a reverse proxy, have the server
    take it from the proxy's header (uvicorn ``--proxy-headers``, gunicorn ``--forwarded-allow-ips``)."""
    return meta.get("REMOTE_ADDR") or "unknown"


def auth_failures_check(address: str) -> None:
    """Raise AuthThrottled when ``address`` has used up its failures; one Redis GET otherwise."""
    limit = settings.MLAB_AUTH_FAILURE_LIMIT
    if limit <= 0:
        return
    key = FAILURES_PREFIX + address
    try:
        connection = redis_connection()
        if connection.scard(key) < limit:
            return
        ttl = connection.ttl(key)
    except RedisError as exc:
        logger.warning("failed-authentication throttle unavailable (%s); not throttling", exc)
        return
    raise AuthThrottled(max(int(ttl), 1))


_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()


def _async_redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = _async_clients[loop] = aioredis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=5
        )
    return client


async def auth_failures_check_async(address: str) -> None:
    """``auth_failures_check`` in the event loop itself (no thread), for the ASGI doors of client polls."""
    limit = settings.MLAB_AUTH_FAILURE_LIMIT
    if limit <= 0:
        return
    key = FAILURES_PREFIX + address
    try:
        client = _async_redis()
        if await client.scard(key) < limit:
            return
        ttl = await client.ttl(key)
    except (RedisError, OSError) as exc:
        logger.warning("failed-authentication throttle unavailable (%s); not throttling", exc)
        return
    raise AuthThrottled(max(int(ttl), 1))


def auth_failure_record(address: str, digest: str | None) -> None:
    """Count a failed authentication from ``address`` presenting the token whose sha256 is ``digest`` (None:
    a malformed header). The same token counts once per window."""
    if settings.MLAB_AUTH_FAILURE_LIMIT <= 0:
        return
    member = digest[:16] if digest else "malformed"
    try:
        connection = redis_connection()
        connection.eval(_RECORD, 1, FAILURES_PREFIX + address, member, settings.MLAB_AUTH_FAILURE_WINDOW_SECONDS)
    except RedisError as exc:
        logger.warning("could not count a failed authentication from %s: %s", address, exc)
