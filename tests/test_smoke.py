"""The embedded default, as a newcomer meets it: a fresh var/, nothing configured, the real server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def embedded_env(tmp_path_factory):
    var_dir = Path(tmp_path_factory.mktemp("smoke"))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE")
        and not k.startswith("PYTEST")
    }
    env["MLAB_VAR_DIR"] = str(var_dir)
    yield env, var_dir
    pidfile = var_dir / "redis.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        except ProcessLookupError:
            pass


def _manage(env, *args):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True
    )


def test_fresh_embedded_default_serves_admin_api_and_health(embedded_env):
    env, var_dir = embedded_env
    _manage(env, "migrate", "--noinput")
    demo = _manage(env, "mlab_demo").stdout
    token = demo.split("Authorization: Token ")[1].split("'")[0]
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlabsite.serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                health = requests.get(f"{base}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not start")
        assert health.json() == {"status": "ok", "database": "up", "redis": "up"}
        assert (var_dir / "mlab.sqlite3").exists() and (var_dir / "redis.sock").exists()
        assert requests.get(f"{base}/api/v1/templates/", timeout=5).status_code == 401
        listing = requests.get(f"{base}/api/v1/templates/", headers={"Authorization": f"Token {token}"}, timeout=5)
        # the four built-ins, and the demo's deliberately bad template (the demo user's own, not published)
        slugs = sorted(template["slug"] for template in listing.json()["results"])
        assert slugs == ["binary-gbdt", "binary-lr", "binary-rf", "demo-inverted-lr", "regression-linear"]
        session = requests.Session()
        login = session.get(f"{base}/admin/login/", timeout=5)
        csrf = session.cookies["csrftoken"]
        page = session.post(
            f"{base}/admin/login/?next=/admin/",
            timeout=5,
            data={"username": "demo", "password": "mlab-demo", "csrfmiddlewaretoken": csrf, "next": "/admin/"},
        )
        assert login.status_code == 200 and "Algorithm templates" in page.text
        assert requests.get(f"{base}/static/mlab/admin.css", timeout=5).status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[0]
    assert server.returncode == 0, output
