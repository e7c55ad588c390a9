"""Serve Mlab: the ASGI web server (uvicorn) and an RQ worker beside it, stopped together.

    python -m mlabsite.serve [--host 127.0.0.1] [--port 8000] [--workers 1] [--demo]

Each web worker holds its long polls (one socket each) in its event loop: the limit on open files is raised
to the hard limit for both processes (``ulimit -Hn``; 10,000 held polls need more than the usual 1,024).
If either process exits, the other is stopped too, so that a demo never runs without its worker. With
``--demo``, once the server answers, the demo loop (``manage.py mlab_demo --loop``: an SDK client predicting
through an A/B split and a rollback) runs in a process of its own; if it fails, the server keeps serving.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_SECONDS = 60.0


def commands(host: str, port: int, web_workers: int) -> list[list[str]]:
    python = sys.executable
    return [
        [
            python,
            "-m",
            "uvicorn",
            "mlabsite.asgi:application",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            str(web_workers),
            "--lifespan",
            "off",
            "--no-access-log",
        ],
        [
            python,
            "manage.py",
            "rqworker",
            "default",
            "--with-scheduler",
            "--serializer",
            "rq.serializers.JSONSerializer",
        ],
    ]


def wait_until_answering(
    base_url: str, web: subprocess.Popen, stopping: Callable[[], bool], timeout: float = READY_TIMEOUT_SECONDS
) -> bool:
    """True once ``/healthz`` answers 200; False if the web process exits, ``stopping()`` turns true or
    ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and web.poll() is None and not stopping():
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:  # refused while starting, or 503 (HTTPError) while a dependency is not up yet
            pass
        time.sleep(0.2)
    return False


def raise_open_files_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (children inherit it); the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # e.g. a hard limit above the kernel's nr_open: keep the soft one
            pass
    return soft


def demo_loop_command(base_url: str) -> list[str]:
    return [sys.executable, "manage.py", "mlab_demo", "--loop", "--base-url", base_url]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--demo", action="store_true", help="run the demo loop (SDK client, A/B split, rollback) once serving"
    )
    args = parser.parse_args(argv)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "mlabsite.settings.base")}
    open_files = raise_open_files_limit()
    # Start the embedded Redis (when it is the one in use) before the children race to start it.
    subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, check=True)
    children = [subprocess.Popen(cmd, cwd=ROOT, env=env) for cmd in commands(args.host, args.port, args.workers)]
    print(
        f"Mlab serving on http://{args.host}:{args.port}/ (web pid {children[0].pid}, worker pid "
        f"{children[1].pid}), up to {open_files} open files each; Ctrl-C stops both.",
        flush=True,
    )
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    loop = None
    if args.demo:
        base_url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
        if wait_until_answering(base_url, children[0], lambda: stopping):
            loop = subprocess.Popen(demo_loop_command(base_url), cwd=ROOT, env=env)
        elif not stopping:
            print(f"The server did not answer at {base_url}/healthz; the demo loop did not run.", flush=True)
    while not stopping and all(child.poll() is None for child in children):
        if loop is not None and loop.poll() is not None:
            if loop.returncode == 0:
                print(
                    f"Demo loop done. Mlab keeps serving on http://{args.host}:{args.port}/ ; Ctrl-C stops it.",
                    flush=True,
                )
            else:
                print(
                    f"The demo loop failed (exit status {loop.returncode}; its message is above). "
                    "The server keeps serving; Ctrl-C stops it.",
                    flush=True,
                )
            loop = None
        time.sleep(0.2)
    for child in [*children, *([loop] if loop is not None else [])]:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + 10
    for child in [*children, *([loop] if loop is not None else [])]:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main())
