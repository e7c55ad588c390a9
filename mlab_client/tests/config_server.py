"""A loopback HTTP server that speaks the client-facing contract, with the switches the SDK's tests need.

It serves ``GET /api/v1/config/{scene}/`` (token auth, ETag, 304 on If-None-Match, ``?wait=N`` held until
a new revision), ``GET /api/v1/scenes/{scene}/versions/{v}/artifact/`` and ``POST
/api/v1/scenes/{scene}/events/`` (the contract's batches, checked with ``contract.batch_errors``, kept once per
batch id as the real server must). Tests publish revisions, make it fail (503), serve tampered bytes, refuse
batches (413 over a limit, 400 naming events, 503), lose the answer to a kept batch, or take it down and
bring it back on the same port.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from mlab_client.contract import BUCKETS, batch_errors
from mlab_client.routing import allocate


@dataclass(frozen=True)
class EventPost:
    """One POST to the events endpoint, whatever became of it."""

    batch: str
    events: list
    status: int  # what was answered (0: the connection was dropped with the batch kept)


class ConfigServer:
    """The config contract on 127.0.0.1, in this process. Not the Mlab server: a stand-in for the SDK's tests."""

    def __init__(self, *, scene: str = "test-scene", token: str = "client-token", salt: str = "s4lt") -> None:
        self.send_length = True  # False: answers without Content-Length, read until the connection closes
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
        # the events endpoint
        self.event_posts: list[EventPost] = []
        self.kept: dict[str, list] = {}  # batch id → its events, each batch once: what the server counts
        self.events_down = False  # answer 503 to every events POST
        self.events_missing = False  # answer 404, as a server without the events endpoint does
        self.events_fail_next = 0  # answer 503 to the next N events POSTs
        self.events_limit: int | None = None  # answer 413 to a batch of more events than this
        self.events_reject: Callable[[dict], bool] | None = None  # 400 naming the events this says are bad
        self.events_reject_style = "index"  # "index": {"events": {"3": …}}; "list": DRF's aligned list; "batch"
        self.events_lose_replies = 0  # keep the next N batches, then drop the connection before answering
        self.events_delay = 0.0  # seconds to wait before answering an events POST
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

    # -- what the events endpoint kept ---------------------------------------------------------------------------

    def kept_events(self) -> list[dict]:
        """Every event of every batch kept, each batch counted once (as the server must count them)."""
        with self._changed:
            return [event for events in self.kept.values() for event in events]

    def _receive_events(self, document: object) -> tuple[int, object]:
        """The answer to a POSTed batch (status, JSON body); keeps the batch when it is accepted."""
        with self._changed:
            batch = document.get("batch") if isinstance(document, dict) else None
            events = document.get("events") if isinstance(document, dict) else None

            def record(status: int) -> None:
                self.event_posts.append(EventPost(str(batch), list(events or []), status))

            if self.events_down or self.events_fail_next > 0:
                self.events_fail_next = max(0, self.events_fail_next - 1)
                record(503)
                return 503, {"detail": "unavailable"}
            if self.events_limit is not None and isinstance(events, list) and len(events) > self.events_limit:
                record(413)
                return 413, {"detail": f"at most {self.events_limit} events a batch"}
            errors = batch_errors(document)
            if not errors and self.events_reject is not None:
                bad = [index for index, event in enumerate(events) if self.events_reject(event)]
                if bad and self.events_reject_style == "index":
                    errors = {"events": {str(index): {"unit_id": ["refused by the test"]} for index in bad}}
                elif bad and self.events_reject_style == "list":
                    errors = {"events": [{"unit_id": ["refused"]} if i in bad else {} for i in range(len(events))]}
                elif bad:
                    errors = {"batch": ["refused by the test"]}
            if errors:
                record(400)
                return 400, errors
            self.kept.setdefault(batch, events)  # a batch id seen before is accepted, not counted again
            if self.events_lose_replies > 0:
                self.events_lose_replies -= 1
                record(0)
                return 0, None
            record(202)
            return 202, {"accepted": len(events)}


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

        def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if server.fail:
                return self._send(503, b'{"detail": "unavailable"}')
            if self.headers.get("Authorization") != f"Token {server.token}":
                return self._send(401, b'{"detail": "Authentication credentials were not provided."}')
            segments = [s for s in urlsplit(self.path).path.split("/") if s]
            if segments != ["api", "v1", "scenes", server.scene, "events"] or server.events_missing:
                return self._send(404, b'{"detail": "Not found."}')
            try:
                document = json.loads(body)
            except ValueError:
                return self._send(400, b'{"detail": "JSON parse error"}')
            if server.events_delay:
                time.sleep(server.events_delay)
            status, answer = server._receive_events(document)
            if status == 0:  # kept, and the answer lost on the way
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return None
            return self._send(status, json.dumps(answer).encode())

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
                    if server.send_length:
                        self.send_header("Content-Length", str(len(body)))
                    else:
                        self.close_connection = True  # the body ends when the connection does
                self.end_headers()
                if status != 304:
                    self.wfile.write(body)
            except OSError:
                self.close_connection = True

    return Handler
