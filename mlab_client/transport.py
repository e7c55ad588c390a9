"""How the client talks to Mlab: the config long-poll and artifact downloads over HTTP, artifacts from Redis,
event batches over HTTP or into a Redis stream.

Every socket the HTTP session opens is registered, so ``HttpTransport.interrupt`` can shut down a long-poll
that the server is holding: ``ModelClient.close`` must return within a second, not after ``wait`` seconds.
Events go through a session of their own, so that closing the config's does not cut a last flush short.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import weakref
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from . import contract
from .config import VersionInfo
from .errors import ArtifactError, ConfigTooLarge, MlabClientError, RefreshError
from .events import ACCEPTED, REJECTED, RETRY, TOO_LARGE, Delivery, named_events

_DOWNLOAD_BLOCK = 1 << 20
# A config names versions and a bucket allocation: kilobytes. Far more is a broken or hostile server.
MAX_CONFIG_BYTES = 8 * 1024 * 1024
_REDIS_BATCH = 8  # chunks per MGET: bounded replies even for a 100 MiB artifact


def verify_artifact(data: bytes, sha256: str, size: int, source: str) -> bytes:
    """Return ``data`` if it has the expected size and sha256; raise ``ArtifactError`` naming the source."""
    if len(data) != size:
        raise ArtifactError(f"artifact {sha256[:12]} from {source}: {len(data)} bytes, expected {size}")
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ArtifactError(f"artifact {sha256[:12]} from {source}: sha256 mismatch (got {actual[:12]})")
    return data


class _SocketRegistry:
    def __init__(self) -> None:
        self.connections: weakref.WeakSet[HTTPConnection] = weakref.WeakSet()
        self.closed = False
        self.lock = threading.Lock()

    def add(self, connection: HTTPConnection) -> None:
        with self.lock:
            if self.closed:
                connection.close()
                raise requests.ConnectionError("the client is closed")
            self.connections.add(connection)

    def interrupt(self) -> None:
        with self.lock:
            self.closed = True
            connections = list(self.connections)
        for connection in connections:
            sock = getattr(connection, "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _interruptible_adapter(registry: _SocketRegistry) -> HTTPAdapter:
    def tracked(base: type[HTTPConnection]) -> type[HTTPConnection]:
        def connect(self: HTTPConnection) -> None:
            base.connect(self)
            registry.add(self)

        return type(f"Tracked{base.__name__}", (base,), {"connect": connect})

    pools = {
        "http": type("TrackedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": tracked(HTTPConnection)}),
        "https": type(
            "TrackedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": tracked(HTTPSConnection)}
        ),
    }

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

    return Adapter()


class HttpTransport:
    """The Mlab server's client-facing endpoints, authenticated with a token that is never logged or shown."""

    def __init__(self, base_url: str, token: str, *, timeout: float, max_config_bytes: int = MAX_CONFIG_BYTES) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = timeout
        self.max_config_bytes = max_config_bytes
        self._registry = _SocketRegistry()
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Token {token}"
        self._session.headers["User-Agent"] = "mlab-client/0.1"
        adapter = _interruptible_adapter(self._registry)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"<HttpTransport {self.base_url}>"

    def get_config(self, scene: str, *, etag: str | None, wait: int) -> tuple[dict | None, str | None]:
        """``(config, etag)``: config is None when the server answered 304 (unchanged since ``etag``).

        With an ``etag`` and ``wait`` > 0 the server may hold the request up to ``wait`` seconds."""
        headers = {"If-None-Match": etag} if etag else {}
        params = {"wait": wait} if etag and wait > 0 else None
        read_timeout = self.timeout + (wait if params else 0)
        response = self._session.get(
            urljoin(self.base_url, f"api/v1/config/{quote(scene, safe='')}/"),
            headers=headers,
            params=params,
            timeout=(self.timeout, read_timeout),
            stream=True,
        )
        with response:
            if response.status_code == 304:
                return None, etag
            if response.status_code != 200:
                raise RefreshError(_describe_status("config", response.status_code))
            try:
                body = json.loads(self._read_capped(response))
            except ValueError:
                raise RefreshError("config: the response is not JSON") from None
            return body, response.headers.get("ETag")

    def _read_capped(self, response: requests.Response) -> bytes:
        """The body, refused (ConfigTooLarge) as soon as it is known to exceed ``max_config_bytes``: from its
        Content-Length when sent, else while it is read, so an oversized config never fills memory."""
        cap = self.max_config_bytes
        too_large = ConfigTooLarge(f"config: larger than the {cap:,} bytes this client accepts (max_config_bytes)")
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            raise too_large
        buffer = bytearray()
        for block in response.iter_content(_DOWNLOAD_BLOCK):
            buffer += block
            if len(buffer) > cap:
                raise too_large
        return bytes(buffer)

    def get_artifact(self, info: VersionInfo) -> bytes:
        """The artifact bytes of ``info``, checked against its size and sha256 (``ArtifactError`` otherwise)."""
        source = f"HTTP ({info.url})"
        url = urljoin(self.base_url, info.url)
        if urlsplit(url)[:2] != urlsplit(self.base_url)[:2]:
            # The token goes to the Mlab server only, whatever a config says.
            raise ArtifactError(f"artifact v{info.version}: {info.url} is not on {self.base_url}")
        response = self._session.get(url, stream=True, timeout=(self.timeout, self.timeout * 6))
        with response:
            if response.status_code != 200:
                raise ArtifactError(f"artifact v{info.version}: {_describe_status('artifact', response.status_code)}")
            buffer = bytearray()
            for block in response.iter_content(_DOWNLOAD_BLOCK):
                buffer += block
                if len(buffer) > info.size:  # never buffer more than the config promised
                    raise ArtifactError(f"artifact {info.sha256[:12]} from {source}: more than {info.size} bytes")
        return verify_artifact(bytes(buffer), info.sha256, info.size, source)

    def post_events(self, scene: str, body: bytes, *, timeout: float) -> tuple[int, Any]:
        """POST one batch to the scene's events endpoint: ``(status, JSON answer or None)``.

        Network failures raise (``requests.RequestException``, ``OSError``); statuses are the caller's."""
        response = self._session.post(
            urljoin(self.base_url, contract.events_path(scene)),
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=(min(self.timeout, timeout), timeout),
        )
        with response:
            try:
                answer = response.json() if response.content else None
            except ValueError:
                answer = None
            return response.status_code, answer

    def interrupt(self) -> None:
        """Abort every request in flight and refuse new ones (called by ``ModelClient.close``)."""
        self._registry.interrupt()
        self._session.close()


class HttpEvents:
    """Event batches to ``POST /api/v1/scenes/{scene}/events/``, each answer read as the contract says."""

    def __init__(self, transport: HttpTransport, scene: str) -> None:
        self._http = transport
        self._scene = scene

    def __repr__(self) -> str:
        return f"<HttpEvents {self._http.base_url}>"

    def send(self, batch_id: str, events_json: str, count: int, timeout: float) -> Delivery:
        body = f'{{"batch":"{batch_id}","events":{events_json}}}'.encode()
        try:
            status, answer = self._http.post_events(self._scene, body, timeout=timeout)
        except (requests.RequestException, OSError) as exc:
            return Delivery(RETRY, error=f"events: {type(exc).__name__}: {exc}")
        if 200 <= status < 300:
            return Delivery(ACCEPTED)
        if status == 413:
            return Delivery(TOO_LARGE, error="events: HTTP 413 (batch too large)")
        if status == 400:
            return Delivery(REJECTED, named_events(answer, count), error=f"events: HTTP 400 {_brief(answer)}")
        if status == 404:  # kept and retried: the server may be upgraded to one that takes events
            return Delivery(RETRY, error="events: HTTP 404 (this server takes no events, or the scene is unknown)")
        return Delivery(RETRY, error=_describe_status("events", status))

    def interrupt(self) -> None:
        self._http.interrupt()


def _brief(answer: Any) -> str:
    text = json.dumps(answer, ensure_ascii=False) if answer is not None else "(no body)"
    return text if len(text) <= 200 else text[:197] + "..."


def _describe_status(what: str, status: int) -> str:
    hints = {
        401: "the token was refused",
        403: "the token may not read this scene",
        404: "unknown scene, or nothing published yet",
    }
    hint = hints.get(status, "server error" if status >= 500 else "unexpected answer")
    return f"{what}: HTTP {status} ({hint})"


class RedisArtifacts:
    """Artifacts read straight from the server's Redis cache, under the keys ``contract`` defines.

    ``get`` returns None on a cache miss and raises ``ArtifactError`` on a size or sha256 mismatch; Redis
    errors (``redis.RedisError``, ``OSError``) propagate so that the caller can fall back to HTTP."""

    def __init__(self, url: str, *, timeout: float) -> None:
        try:
            import redis
        except ImportError:
            raise MlabClientError("redis_url needs the redis package: pip install 'mlab-client[redis]'") from None
        self.errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)

    def __repr__(self) -> str:
        return "<RedisArtifacts>"

    def get(self, info: VersionInfo) -> bytes | None:
        raw_meta = self._redis.get(contract.artifact_meta_key(info.sha256))
        if raw_meta is None:
            return None
        try:
            meta = json.loads(raw_meta)
            size, chunks = int(meta["size"]), int(meta["chunks"])
        except (ValueError, KeyError, TypeError):
            raise ArtifactError(f"artifact {info.sha256[:12]} from Redis: unreadable meta") from None
        if size != info.size:
            raise ArtifactError(f"artifact {info.sha256[:12]} from Redis: meta says {size} bytes, expected {info.size}")
        buffer = bytearray()
        for first in range(0, chunks, _REDIS_BATCH):
            keys = [
                contract.artifact_chunk_key(info.sha256, i) for i in range(first, min(chunks, first + _REDIS_BATCH))
            ]
            for piece in self._redis.mget(keys):
                if piece is None:
                    return None
                assert isinstance(piece, bytes), "the client does not decode responses: Redis answers bytes"
                buffer += piece
                if len(buffer) > info.size:
                    raise ArtifactError(f"artifact {info.sha256[:12]} from Redis: more than {info.size} bytes")
        return verify_artifact(bytes(buffer), info.sha256, info.size, "Redis")

    def close(self) -> None:
        self._redis.close()


class RedisEventStream:
    """Event batches ``XADD``ed into the scene's stream (``contract.events_stream_key``), one entry a batch,
    trimmed to about ``maxlen`` entries. Redis errors are answered with a retry of the same batch."""

    def __init__(self, url: str, scene: str, *, timeout: float, maxlen: int = contract.EVENTS_STREAM_MAXLEN) -> None:
        try:
            import redis
        except ImportError:
            raise MlabClientError("redis_url needs the redis package: pip install 'mlab-client[redis]'") from None
        self.errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.key = contract.events_stream_key(scene)
        self._maxlen = maxlen
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)

    def __repr__(self) -> str:
        return f"<RedisEventStream {self.key}>"

    def send(self, batch_id: str, events_json: str, count: int, timeout: float) -> Delivery:
        # ``timeout`` cannot shorten a Redis command; the socket timeout given at construction bounds it
        try:
            self._redis.xadd(
                self.key,
                {"batch": batch_id, "format": contract.EVENTS_FORMAT_VERSION, "events": events_json},
                maxlen=self._maxlen,
                approximate=True,
            )
        except self.errors as exc:
            return Delivery(RETRY, error=f"events: Redis: {type(exc).__name__}: {exc}")
        return Delivery(ACCEPTED)

    def interrupt(self) -> None:
        self._redis.connection_pool.disconnect()
