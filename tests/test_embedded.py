"""The embedded Redis: one daemon on a unix socket, started on demand, shared by every process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis

from mlabsite import embedded


@pytest.fixture
def var_dir(tmp_path_factory):
    # unix socket paths are limited to about 100 bytes: keep it short
    path = Path(tmp_path_factory.mktemp("emb", numbered=True))
    yield path
    pidfile = path / "redis.pid"
    if pidfile.exists():
        os.kill(int(pidfile.read_text()), signal.SIGTERM)


def test_started_on_demand_and_reused(var_dir):
    socket_path = embedded.ensure_redis(var_dir)
    pid = (var_dir / "redis.pid").read_text()
    client = redis.Redis(unix_socket_path=str(socket_path))
    client.set("k", "v")
    assert embedded.ensure_redis(var_dir) == socket_path
    assert (var_dir / "redis.pid").read_text() == pid
    assert redis.Redis.from_url(embedded.redis_url(var_dir)).get("k") == b"v"


def test_concurrent_starters_share_one_server(var_dir):
    script = textwrap.dedent(f"""
        from pathlib import Path
        from mlabsite import embedded
        import redis
        path = embedded.ensure_redis(Path({str(var_dir)!r}))
        redis.Redis(unix_socket_path=str(path)).incr("starters")
    """)
    root = Path(__file__).resolve().parents[1]
    procs = [subprocess.Popen([sys.executable, "-c", script], cwd=root) for _ in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    client = redis.Redis(unix_socket_path=str(var_dir / "redis.sock"))
    assert client.get("starters") == b"4"
    assert int(client.info("clients")["connected_clients"]) >= 1


def test_a_stale_socket_file_is_replaced(var_dir):
    (var_dir / "redis.sock").write_text("stale")
    socket_path = embedded.ensure_redis(var_dir)
    assert redis.Redis(unix_socket_path=str(socket_path)).ping()
