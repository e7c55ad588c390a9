"""How the client talks to Mlab: the config long-poll and artifact downloads over HTTP, artifacts from Redis.

HTTP goes through the standard library's ``http.client``, not requests: requests and urllib3 cost a service
about 8 MiB of resident memory for two GET endpoints on one server (see bench/client_memory.py). What the
client needs from HTTP is small: keep-alive reuse, per-request timeouts, HTTPS with certificate checks, and
``HttpTransport.interrupt``, which shuts down every connection it opened, so that ``ModelClient.close`` returns
within a second even while the server holds a long-poll. Redirects and proxy variables are not followed: the
client talks to its Mlab server only (the token must never go elsewhere).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import threading
from urllib.parse import quote, urlencode, urljoin, urlsplit

from . import contract
from .config import VersionInfo
from .errors import ArtifactError, MlabClientError, RefreshError

_DOWNLOAD_BLOCK = 1 << 20
_REDIS_BATCH = 8  # chunks per MGET: bounded replies even for a 100 MiB artifact
_IDLE_CONNECTIONS = 2  # kept for reuse: the listener polls and downloads one request at a time
_USER_AGENT = "mlab-client/0.1"


def verify_artifact(data: bytes, sha256: str, size: int, source: str) -> bytes:
    """Return ``data`` if it has the expected size and sha256; raise ``ArtifactError`` naming the source."""
    if len(data) != size:
        raise ArtifactError(f"artifact {sha256[:12]} from {source}: {len(data)} bytes, expected {size}")
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ArtifactError(f"artifact {sha256[:12]} from {source}: sha256 mismatch (got {actual[:12]})")
    return data


class TransportClosed(MlabClientError, ConnectionError):
    """A request was made, or was in flight, when ``HttpTransport.interrupt`` was called."""


class _Connections:
    """The HTTP connections to one server: idle ones kept for reuse, every open one known to ``interrupt``."""

    def __init__(self, scheme: str, host: str, port: int | None, timeout: float) -> None:
        self._scheme, self._host, self._port, self._timeout = scheme, host, port, timeout
        self._idle: list[http.client.HTTPConnection] = []
        # every open connection with its socket: http.client drops its own reference to the socket of a
        # "Connection: close" response while the body is still being read, and interrupt must still reach it
        self._open: dict[http.client.HTTPConnection, socket.socket] = {}
        self._closed = False
        self._lock = threading.Lock()
        self._tls = None

    def take(self) -> tuple[http.client.HTTPConnection, bool]:
        """A connection and whether it was reused (a reused one may have been closed by the server since)."""
        with self._lock:
            if self._closed:
                raise TransportClosed("the client is closed")
            if self._idle:
                return self._idle.pop(), True
        connection = self._new()
        connection.connect()  # explicitly, so that the socket exists before interrupt() can look for it
        with self._lock:
            if self._closed:
                connection.close()
                raise TransportClosed("the client is closed")
            self._open[connection] = connection.sock
        return connection, False

    def give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < _IDLE_CONNECTIONS:
                self._idle.append(connection)
                return
        self.discard(connection)

    def discard(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._open.pop(connection, None)
        connection.close()

    def interrupt(self) -> None:
        with self._lock:
            self._closed = True
            connections = list(self._open.items())
            self._open.clear()
            self._idle.clear()
        for connection, sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked reading a held long-poll
            except OSError:
                pass  # already closed
            connection.close()

    def _new(self) -> http.client.HTTPConnection:
        if self._scheme == "https":
            if self._tls is None:
                import ssl  # only for https: the TLS libraries cost a few MiB that plain http never needs

                self._tls = ssl.create_default_context()
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout, context=self._tls)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)


class _Response:
    """A response whose body is read by the caller; ``close`` returns a fully read connection for reuse."""

    def __init__(self, pool: _Connections, connection: http.client.HTTPConnection, raw: http.client.HTTPResponse):
        self.status = raw.status
        self.headers = raw.headers
        self._pool, self._connection, self._raw = pool, connection, raw

    def read(self, amount: int | None = None) -> bytes:
        try:
            return self._raw.read(amount)
        except (OSError, http.client.HTTPException):
            self._connection_failed()
            raise

    def close(self) -> None:
        if self._connection is None:
            return
        if self._raw.isclosed() and not self._raw.will_close:
            self._pool.give_back(self._connection)  # the body was read to its end: the connection is clean
        else:
            self._pool.discard(self._connection)
        self._connection = None

    def _connection_failed(self) -> None:
        if self._connection is not None:
            self._pool.discard(self._connection)
            self._connection = None

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class HttpTransport:
    """The Mlab server's client-facing endpoints, authenticated with a token that is never logged or shown."""

    def __init__(self, base_url: str, token: str, *, timeout: float) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = timeout
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an http:// or https:// URL with a host")
        self._origin = (parts.scheme, parts.netloc)
        self._pool = _Connections(parts.scheme, parts.hostname, parts.port, timeout)
        self._headers = {"Authorization": f"Token {token}", "User-Agent": _USER_AGENT}

    def __repr__(self) -> str:
        return f"<HttpTransport {self.base_url}>"

    def get_config(self, scene: str, *, etag: str | None, wait: int) -> tuple[dict | None, str | None]:
        """``(config, etag)``: config is None when the server answered 304 (unchanged since ``etag``).

        With an ``etag`` and ``wait`` > 0 the server may hold the request up to ``wait`` seconds."""
        held = bool(etag) and wait > 0
        url = urljoin(self.base_url, f"api/v1/config/{quote(scene, safe='')}/")
        if held:
            url += "?" + urlencode({"wait": wait})
        headers = {"If-None-Match": etag, "Accept": "application/json"} if etag else {"Accept": "application/json"}
        with self._get(url, headers, read_timeout=self.timeout + (wait if held else 0)) as response:
            if response.status == 304:
                response.read()
                return None, etag
            body = response.read()
            if response.status != 200:
                raise RefreshError(_describe_status("config", response.status))
            try:
                config = json.loads(body)
            except ValueError:
                raise RefreshError("config: the response is not JSON") from None
            return config, response.headers.get("ETag")

    def get_artifact(self, info: VersionInfo) -> bytes:
        """The artifact bytes of ``info``, checked against its size and sha256 (``ArtifactError`` otherwise)."""
        source = f"HTTP ({info.url})"
        url = urljoin(self.base_url, info.url)
        if urlsplit(url)[:2] != self._origin:
            # The token goes to the Mlab server only, whatever a config says.
            raise ArtifactError(f"artifact v{info.version}: {info.url} is not on {self.base_url}")
        with self._get(url, {}, read_timeout=self.timeout * 6) as response:
            if response.status != 200:
                response.read()
                raise ArtifactError(f"artifact v{info.version}: {_describe_status('artifact', response.status)}")
            buffer = bytearray()
            while block := response.read(_DOWNLOAD_BLOCK):
                buffer += block
                if len(buffer) > info.size:  # never buffer more than the config promised
                    raise ArtifactError(f"artifact {info.sha256[:12]} from {source}: more than {info.size} bytes")
        return verify_artifact(bytes(buffer), info.sha256, info.size, source)

    def interrupt(self) -> None:
        """Abort every request in flight and refuse new ones (called by ``ModelClient.close``)."""
        self._pool.interrupt()

    def _get(self, url: str, headers: dict[str, str], *, read_timeout: float) -> _Response:
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {**self._headers, **headers}
        while True:
            connection, reused = self._pool.take()
            try:
                if connection.sock is None:
                    raise http.client.RemoteDisconnected("the kept-alive connection was closed")
                connection.sock.settimeout(read_timeout)
                connection.request("GET", target, headers=headers)
                raw = connection.getresponse()
            except TransportClosed:
                raise
            except (OSError, http.client.HTTPException) as exc:
                self._pool.discard(connection)
                # A kept-alive connection the server closed meanwhile fails at once: retry once, on a new one
                # (a GET is safe to repeat). A fresh connection's failure is the answer.
                if reused and isinstance(exc, ConnectionError | http.client.BadStatusLine):
                    continue
                raise
            return _Response(self._pool, connection, raw)


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
                buffer += piece
                if len(buffer) > info.size:
                    raise ArtifactError(f"artifact {info.sha256[:12]} from Redis: more than {info.size} bytes")
        return verify_artifact(bytes(buffer), info.sha256, info.size, "Redis")

    def close(self) -> None:
        self._redis.close()
