"""Serve Mlab: the ASGI web server (uvicorn) and an RQ worker beside it, stopped together.

    python -m mlabsite.serve [--host 127.0.0.1] [--port 8000] [--workers 1] [--demo]
    python -m mlabsite.serve --stop          # what `make stop` runs

Each web worker holds its long polls (one socket each) in its event loop: the limit on open files is raised
to the hard limit for both processes (``ulimit -Hn``; 10,000 held polls need more than the usual 1,024).
If either process exits, the other is stopped too, so that a demo never runs without its worker. With
``--demo``, once the server answers, the demo loop (``manage.py mlab_demo --loop``: an SDK client predicting
through an A/B split and a rollback) runs in a process of its own; if it fails, the server keeps serving.

The processes' ids are written to ``var/serve.pids``. ``--stop`` stops them (whatever stopped this process
before it could: a closed terminal, a kill), then the embedded Redis that Mlab started under ``var/``. Only
processes whose command line is the one recorded are signalled: a pid reused by another program is left alone.
"""

from __future__ import annotations

import argparse
import json
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
STOP_TIMEOUT_SECONDS = 10.0


def var_dir() -> Path:
    """MLAB_VAR_DIR (from the environment or .env, as the settings read it), else var/; without importing the
    settings, which would start the embedded Redis."""
    import environ

    environ.Env.read_env(ROOT / ".env", overwrite=False)
    return Path(os.environ.get("MLAB_VAR_DIR") or ROOT / "var")


def _cmdline(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


def record_processes(path: Path, processes: list[tuple[str, int, list[str] | None]]) -> None:
    """Write (role, pid, command line) of ``processes`` to ``path`` for ``stop_recorded``. The command line is the
    one the process was started with (a child may not have exec'd it yet), else this process's own."""
    rows = [
        {"role": role, "pid": pid, "cmdline": " ".join(command) if command else _cmdline(pid) or ""}
        for role, pid, command in processes
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows))


def _signal_all(rows: list[dict], sig: int) -> list[dict]:
    """Send ``sig`` to each recorded process still running as recorded; return those."""
    alive = []
    for row in rows:
        if row["cmdline"] and _cmdline(row["pid"]) == row["cmdline"]:
            try:
                os.kill(row["pid"], sig)
            except ProcessLookupError:
                continue
            alive.append(row)
    return alive


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


def _with_descendants(rows: list[dict]) -> list[dict]:
    """The recorded processes still running as recorded, and theirs (the worker's scheduler and work horse)."""
    found, queue = [], [row for row in rows if row["cmdline"] and _cmdline(row["pid"]) == row["cmdline"]]
    while queue:
        row = queue.pop(0)
        found.append(row)
        for child in _children(row["pid"]):
            cmdline = _cmdline(child)
            if cmdline and all(child != other["pid"] for other in found + queue):
                queue.append({"role": f"{row['role']}'s child", "pid": child, "cmdline": cmdline})
    return found


def stop_recorded(path: Path, *, say=print) -> list[str]:
    """Stop the processes recorded in ``path`` and their children (TERM, then KILL after STOP_TIMEOUT_SECONDS);
    return the roles of the recorded ones that were running."""
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    rows = _with_descendants(recorded)
    stopped = [row["role"] for row in _signal_all(rows, signal.SIGTERM) if not row["role"].endswith("'s child")]
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and any(_cmdline(r["pid"]) == r["cmdline"] for r in rows if r["cmdline"]):
        time.sleep(0.1)
    for row in _signal_all(rows, signal.SIGKILL):
        say(f"{row['role']} (pid {row['pid']}) did not stop on SIGTERM: killed.")
    path.unlink(missing_ok=True)
    return stopped


def stop_embedded_redis(directory: Path) -> bool:
    """Stop the embedded redis-server of ``directory`` (its pidfile, checked against its command line)."""
    pidfile = directory / "redis.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return False
    cmdline = _cmdline(pid) or ""
    if "redis-server" not in cmdline or str(directory / "redis.sock") not in cmdline:
        return False
    rows = [{"role": "embedded Redis", "pid": pid, "cmdline": cmdline}]
    pidfile.with_name("redis-stop.pids").write_text(json.dumps(rows))
    return bool(stop_recorded(pidfile.with_name("redis-stop.pids")))


def stop_all(directory: Path, *, say=print) -> int:
    """What `make stop` does: the recorded processes of a serve, then the embedded Redis."""
    stopped = stop_recorded(directory / "serve.pids", say=say)
    if stop_embedded_redis(directory):
        stopped.append("embedded Redis")
    say(f"Stopped: {', '.join(stopped)}." if stopped else "Nothing of Mlab was running.")
    return 0


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
    parser.add_argument(
        "--stop", action="store_true", help="stop what a serve left running (its processes, the embedded Redis)"
    )
    args = parser.parse_args(argv)
    if args.stop:
        return stop_all(var_dir())
    pids_file = var_dir() / "serve.pids"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "mlabsite.settings.base")}
    open_files = raise_open_files_limit()
    # Start the embedded Redis (when it is the one in use) before the children race to start it.
    subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env, check=True)
    started = commands(args.host, args.port, args.workers)
    children = [subprocess.Popen(cmd, cwd=ROOT, env=env) for cmd in started]
    recorded: list[tuple[str, int, list[str] | None]] = [
        ("serve", os.getpid(), None),
        ("web", children[0].pid, started[0]),
        ("worker", children[1].pid, started[1]),
    ]
    record_processes(pids_file, recorded)
    print(
        f"Mlab serving on http://{args.host}:{args.port}/ (web pid {children[0].pid}, worker pid "
        f"{children[1].pid}), up to {open_files} open files each; Ctrl-C (or `make stop`) stops both.\n"
        f"The server's and the worker's log: {var_dir() / 'log' / 'mlab.log'} (MLAB_LOG_LEVEL=INFO prints it here "
        "too).",
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
            record_processes(pids_file, [*recorded, ("demo loop", loop.pid, demo_loop_command(base_url))])
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
    pids_file.unlink(missing_ok=True)
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main())
