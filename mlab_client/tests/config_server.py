"""A loopback HTTP server that speaks the client-facing contract, with the switches the SDK's tests need.

It serves ``GET /api/v1/config/{scene}/`` (token auth, ETag, 304 on If-None-Match, ``?wait=N`` held until
a new revision) and ``GET /api/v1/scenes/{scene}/versions/{v}/artifact/``. Tests publish revisions, make it
fail (503), serve tampered bytes, or take it down and bring it back on the same port.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from mlab_client.contract import BUCKETS
from mlab_client.routing import allocate


class ConfigServer:
    """The config contract on 127.0.0.1, in this process. Not the Mlab server: a stand-in for the SDK's tests."""

    def __init__(self, *, scene: str = "test-scene", token: str = "client-token", salt: str = "s4lt") -> None:
        self.scene = scene
        self.token = token
        self.salt = salt
        self.revision = 0
        self.config: dict | None = None
        self.etag: str | None = None
        self.artifacts: dict[int, bytes] = {}
        self.fail = False  # answer 503 to everything
        self.honour_etag = True  # False: a server that ignores If-None-Match and ?wait (always 200 at once)
        self.tampered: set[int] = set()  # versions whose served bytes have one byte flipped
        self.artifact_requests: Counter[int] = Counter()
        self.config_requests = 0
        self._allocation: list = []
        self._changed = threading.Condition()
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- switches ------------------------------------------------------------------------------------------------

    def add_version(self, version: int, data: bytes) -> None:
        self.artifacts[version] = data

    def publish(self, splits: dict[int, int], overrides: dict[str, int] | None = None) -> int:
        """Publish a new revision routing ``splits`` (version → percent) with minimal movement; wake pollers."""
        with self._changed:
            self._allocation = allocate(splits, self._allocation)
            overrides = dict(overrides or {})
            used = sorted({v for _, _, v in self._allocation} | set(overrides.values()))
            self.revision += 1
            self.config = {
                "scene": self.scene,
                "revision": self.revision,
                "salt": self.salt,
                "buckets": BUCKETS,
                "allocation": [list(r) for r in self._allocation],
                "versions": [self._version_entry(v) for v in used],
                "overrides": overrides,
            }
            digest = hashlib.sha256(json.dumps(self.config, sort_keys=True).encode()).hexdigest()
            self.etag = f'"r{self.revision}-{digest[:16]}"'
            self._changed.notify_all()
            return self.revision

    def publish_raw(self, config: dict) -> None:
        """Serve ``config`` as is (for contract violations), as a new ETag."""
        with self._changed:
            self.config = config
            self.etag = f'"raw-{hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]}"'
            self._changed.notify_all()

    def _version_entry(self, version: int) -> dict:
        data = self.artifacts[version]
        return {
            "version": version,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "format": "onnx",
            "url": f"/api/v1/scenes/{self.scene}/versions/{version}/artifact/",
        }

    # -- process-like lifecycle ------------------------------------------------------------------------------

    def start(self) -> ConfigServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Go down like a killed server: stop listening and drop every open connection, held polls included."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._changed:
            connections = list(self._connections)
            self._changed.notify_all()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def running(self) -> bool:
        return self._httpd is not None


def _handler_for(server: ConfigServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with server._changed:
                server._connections.add(self.connection)

        def finish(self) -> None:
            with server._changed:
                server._connections.discard(self.connection)
            try:
                super().finish()
            except OSError:
                pass

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002  (the base class's name)
            pass

        def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
            if server.fail:
                return self._send(503, b'{"detail": "unavailable"}')
            if self.headers.get("Authorization") != f"Token {server.token}":
                return self._send(401, b'{"detail": "Authentication credentials were not provided."}')
            parts = urlsplit(self.path)
            segments = [s for s in parts.path.split("/") if s]
            if segments[:3] == ["api", "v1", "config"] and len(segments) == 4 and segments[3] == server.scene:
                return self._config(parse_qs(parts.query))
            if (
                len(segments) == 7
                and segments[:3] == ["api", "v1", "scenes"]
                and segments[3] == server.scene
                and segments[4] == "versions"
                and segments[6] == "artifact"
                and segments[5].isdigit()
            ):
                return self._artifact(int(segments[5]))
            return self._send(404, b'{"detail": "Not found."}')

        def _config(self, query: dict) -> None:
            server.config_requests += 1
            try:
                wait = min(int(query.get("wait", ["0"])[0]), 60)
            except ValueError:
                return self._send(400, b'{"wait": ["A valid integer is required."]}')
            asked = self.headers.get("If-None-Match") if server.honour_etag else None
            with server._changed:
                if server.config is None:
                    return self._send(404, b'{"detail": "nothing published"}')
                if asked == server.etag and wait > 0:
                    server._changed.wait_for(lambda: server.etag != asked or not server.running, timeout=wait)
                    if not server.running:
                        self.close_connection = True
                        return None  # killed while holding: the client sees the connection drop
                config, etag = server.config, server.etag
            if asked == etag:
                return self._send(304, b"", etag=etag)
            return self._send(200, json.dumps(config).encode(), etag=etag)

        def _artifact(self, version: int) -> None:
            data = server.artifacts.get(version)
            if data is None:
                return self._send(404, b'{"detail": "Not found."}')
            server.artifact_requests[version] += 1
            sha256 = hashlib.sha256(data).hexdigest()
            if version in server.tampered:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            return self._send(200, data, etag=f'"{sha256}"', content_type="application/octet-stream")

        def _send(
            self, status: int, body: bytes, *, etag: str | None = None, content_type: str = "application/json"
        ) -> None:
            try:
                self.send_response(status)
                if etag:
                    self.send_header("ETag", etag)
                if status != 304:
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304:
                    self.wfile.write(body)
            except OSError:
                self.close_connection = True

    return Handler
