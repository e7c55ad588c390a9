"""Serve Mlab: the ASGI web server (uvicorn) and an RQ worker beside it, stopped together.

    python -m mlabsite.serve [--host 127.0.0.1] [--port 8000] [--workers 1]

If either process exits, the other is stopped too, so that a demo never runs without its worker.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args(argv)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "mlabsite.settings.base")}
    # Start the embedded Redis (when it is the one in use) before the children race to start it.
    subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, check=True)
    children = [subprocess.Popen(cmd, cwd=ROOT, env=env) for cmd in commands(args.host, args.port, args.workers)]
    print(
        f"Mlab serving on http://{args.host}:{args.port}/ (web pid {children[0].pid}, worker pid "
        f"{children[1].pid}); Ctrl-C stops both.",
        flush=True,
    )
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(child.poll() is None for child in children):
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + 10
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main())
