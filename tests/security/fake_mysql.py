"""A loopback server that plays the first steps of a MySQL server, to see what a client sends to a hostile one.

It greets with a protocol-10 handshake (offering TLS when given a certificate), switches the client to the
authentication plugin it is told to ask for, records every byte the client sends (before and after TLS
apart), and then refuses the login. ``banner=True`` makes it an open port that is not MySQL at all (it greets
like an SSH server and hangs up). Real sockets, real mysqlclient: nothing is mocked on the client's side.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading

_SCRAMBLE = b"0123456789abcdefghij"  # 20 bytes of "random" challenge
# long password, found rows, long flag, connect with db, protocol 41, secure connection, plugin auth,
# connect attrs, lenenc client data
_CAPABILITIES = 0x1 | 0x2 | 0x4 | 0x8 | 0x200 | 0x8000 | 0x80000 | 0x100000 | 0x200000
_CLIENT_SSL = 0x800


def _packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload


def _read_packet(conn) -> tuple[int, bytes] | None:
    def exactly(n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    head = exactly(4)
    if head is None:
        return None
    body = exactly(int.from_bytes(head[:3], "little"))
    return None if body is None else (head[3], body)


class FakeMySQL:
    def __init__(
        self,
        *,
        auth_plugin: str = "mysql_native_password",
        certificate: tuple[str, str] | None = None,
        banner: bool = False,
        host: str = "127.0.0.1",
    ):
        self.auth_plugin = auth_plugin
        self.certificate = certificate
        self.banner = banner
        self.connections = 0
        self.before_tls = b""  # what the client sent in the clear
        self.after_tls = b""  # what it sent inside TLS
        self._sock = socket.create_server((host, 0))
        self._sock.settimeout(0.2)
        self.host, self.port = host, self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-mysql", daemon=True)

    def __enter__(self) -> FakeMySQL:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sock.close()

    @property
    def received(self) -> bytes:
        return self.before_tls + self.after_tls

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.settimeout(5)
            try:
                self._session(conn)
            except (OSError, ssl.SSLError):
                pass  # the client hung up: what it sent is recorded
            finally:
                conn.close()

    def _session(self, conn) -> None:
        if self.banner:
            conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            return
        capabilities = _CAPABILITIES | (_CLIENT_SSL if self.certificate else 0)
        greeting = (
            b"\x0a5.5.5-10.11.0-fake\0"
            + struct.pack("<I", 7)
            + _SCRAMBLE[:8]
            + b"\0"
            + struct.pack("<H", capabilities & 0xFFFF)
            + bytes([45])  # utf8mb4
            + struct.pack("<H", 2)  # autocommit
            + struct.pack("<H", capabilities >> 16)
            + bytes([len(_SCRAMBLE) + 1])
            + b"\0" * 10
            + _SCRAMBLE[8:]
            + b"\0"
            + b"mysql_native_password\0"
        )
        conn.sendall(_packet(0, greeting))
        answer = _read_packet(conn)
        if answer is None:
            return
        seq, body = answer
        self.before_tls += body
        if self.certificate and len(body) == 32:  # an SSL request: the handshake response comes inside TLS
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.certificate)
            conn = context.wrap_socket(conn, server_side=True)
            answer = _read_packet(conn)
            if answer is None:
                return
            seq, body = answer
            self.after_tls += body
        # Switch to the plugin under test and record what the client answers with.
        conn.sendall(_packet(seq + 1, b"\xfe" + self.auth_plugin.encode() + b"\0" + _SCRAMBLE + b"\0"))
        answer = _read_packet(conn)
        if answer is None:
            return
        seq, body = answer
        if self.certificate and isinstance(conn, ssl.SSLSocket):
            self.after_tls += body
        else:
            self.before_tls += body
        conn.sendall(_packet(seq + 1, b"\xff" + struct.pack("<H", 1045) + b"#28000Access denied for user"))
