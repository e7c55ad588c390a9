"""The embedded default, as a newcomer meets it: a fresh var/, nothing configured, the real server."""

from __future__ import annotations

import json
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
        css = requests.get(f"{base}/static/mlab/admin.css", timeout=5)
        assert css.status_code == 200 and css.content == (ROOT / "static/mlab/admin.css").read_bytes()
        assert requests.get(f"{base}/no-such-page/", timeout=5).status_code == 404
        assert requests.get(f"{base}/", timeout=5, allow_redirects=False).headers["Location"] == "/admin/"
        log = var_dir / "log" / "mlab.log"
        for _ in range(150):  # the worker's first lines, once it has started
            if "rq.worker" in log.read_text():
                break
            time.sleep(0.2)
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[0]
    assert server.returncode == 0, output
    # A quiet terminal: no worker chatter (it goes to var/log/mlab.log), a 4xx said once, no ASGI warning about
    # streaming static files synchronously.
    assert "rq.worker" not in output and "Listening on default" not in output, output
    assert output.count("Not Found: /no-such-page/") == 1, output
    assert "StreamingHttpResponse" not in output, output
    log = (var_dir / "log" / "mlab.log").read_text()
    assert "rq.worker" in log and "Not Found: /no-such-page/" in log


def test_make_stop_stops_what_serve_left_running_the_embedded_redis_included(embedded_env):
    env, var_dir = embedded_env
    _manage(env, "migrate", "--noinput")
    port = _free_port()
    # Its own process group, killed with SIGKILL below: as a closed terminal or a crash would leave things.
    server = subprocess.Popen(
        [sys.executable, "-m", "mlabsite.serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    else:
        server.kill()
        pytest.fail("the server did not start")
    recorded = json.loads((var_dir / "serve.pids").read_text())
    assert [row["role"] for row in recorded] == ["serve", "web", "worker"]
    redis_pid = int((var_dir / "redis.pid").read_text())
    server.kill()  # the web process, the worker (and its scheduler) and Redis are left behind
    server.wait(timeout=10)
    assert requests.get(f"{base}/healthz", timeout=5).status_code == 200

    stopped = subprocess.run(
        ["make", "--no-print-directory", "stop", f"PY={sys.executable}"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert stopped.returncode == 0, stopped.stderr
    assert "Stopped: web, worker, embedded Redis." in stopped.stdout, stopped.stdout
    for row in recorded[1:]:
        assert not Path(f"/proc/{row['pid']}").exists() or _zombie(row["pid"]), (row, _state(row["pid"]))
    # (a zombie counts as stopped: here an orphan's init may not reap it)
    assert not Path(f"/proc/{redis_pid}").exists() or _zombie(redis_pid), _state(redis_pid)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/healthz", timeout=2)
    again = subprocess.run(["make", "--no-print-directory", "stop", f"PY={sys.executable}"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "Nothing of Mlab was running." in again.stdout


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text() + " | " + Path(f"/proc/{pid}/cmdline").read_text()
    except OSError as exc:
        return str(exc)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
