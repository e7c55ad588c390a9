"""A throwaway Mlab for the deployment benchmarks: its own var/ (SQLite + embedded Redis) unless DATABASE_URL /
REDIS_URL are set, a demo user and token, a scene with versions and a published deployment, and server
processes started (and stopped, by pid) on free ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BenchSite:
    def __init__(self, settings_module: str = "mlabsite.settings.base") -> None:
        self.var_dir = Path(tempfile.mkdtemp(prefix="mlab-bench-"))
        os.environ["MLAB_VAR_DIR"] = str(self.var_dir)  # SQLite and the embedded Redis, unless URLs are set
        os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
        os.environ.setdefault("MLAB_LOG_LEVEL", "WARNING")
        self.processes: list[subprocess.Popen] = []
        try:
            import django

            django.setup()
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
        except BaseException:
            self.close()  # the embedded Redis may already run
            raise

    def seed(self, *, artifacts: list[bytes], fmt: str = "onnx") -> dict:
        """A user with a token, a scene with one version per artifact, version 1 published at 100%."""
        from django.contrib.auth import get_user_model

        from apps.deploy.services import (
            client_token_create,
            deployment_create,
            model_version_register,
            scene_create,
            scene_publish,
        )
        from mlabsite.tokens import api_token_create
        from tests.factories import TrainingRunFactory

        suffix = uuid.uuid4().hex[:8]
        user = get_user_model().objects.create_user(f"bench-{suffix}", is_staff=True)
        token = api_token_create(user=user, name="bench")[1]
        scene = scene_create(name=f"bench-{suffix}", user=user)
        for data in artifacts:
            run = TrainingRunFactory(owner=user, artifact_bytes=data, artifact_format=fmt)
            model_version_register(run=run, scene=scene, user=user)
        deployment_create(scene=scene, splits=[{"version": 1, "weight": 100}], user=user)
        scene_publish(scene_id=scene.pk)
        _, client_key = client_token_create(name="bench", scenes=[scene], user=user)
        return {"scene": scene, "user": user, "token": token, "client_key": client_key}

    def env(self, **extra: str) -> dict[str, str]:
        from django.conf import settings
        from django.db import connection

        config = connection.settings_dict
        if config["ENGINE"] == "django.db.backends.sqlite3":
            database_url = f"sqlite:///{config['NAME']}"
        else:
            password = f":{config['PASSWORD']}" if config["PASSWORD"] else ""
            database_url = (
                f"mysql://{config['USER']}{password}@{config['HOST']}:{config['PORT'] or 3306}/{config['NAME']}"
            )
        return {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": settings.REDIS_URL,
            "DJANGO_DEBUG": "false",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            **extra,
        }

    def start(self, command: list[str], *, port: int, env: dict | None = None) -> str:
        """Start a server process listening on ``port`` and wait until /healthz answers."""
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env or self.env(),
            stdout=subprocess.DEVNULL,
            stderr=open(self.var_dir / f"server-{port}.log", "w"),  # noqa: SIM115 (lives as long as the process)
            preexec_fn=_raise_fd_limit,
        )
        self.processes.append(process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    return base
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or busy starting
                time.sleep(0.1)
            if process.poll() is not None:
                break
        raise RuntimeError(f"server did not start: {(self.var_dir / f'server-{port}.log').read_text()[-3000:]}")

    def uvicorn(
        self, *, port: int | None = None, env: dict | None = None, app: str = "mlabsite.asgi:application"
    ) -> str:
        port = port or free_port()
        command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1"]
        command += ["--port", str(port), "--lifespan", "off", "--no-access-log", "--log-level", "warning"]
        return self.start(command, port=port, env=env)

    def worker(self, **env: str) -> subprocess.Popen:
        """``manage.py rqworker`` as ``mlabsite.serve`` starts it (the settings' worker class, JSON serializer)."""
        command = [sys.executable, "manage.py", "rqworker", "default", "--serializer", "rq.serializers.JSONSerializer"]
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env(**env),
            stdout=subprocess.DEVNULL,
            stderr=open(self.var_dir / f"worker-{len(self.processes)}.log", "w"),  # noqa: SIM115 (lives with it)
        )
        self.processes.append(process)
        return process

    def stop_servers(self) -> None:
        """Stop the server and worker processes started so far (the site's database and Redis stay)."""
        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
        self.processes.clear()

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
        pidfile = self.var_dir / "redis.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
        shutil.rmtree(self.var_dir, ignore_errors=True)


def _raise_fd_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
