"""Benchmark: 1,000 concurrent long-polling clients on one ASGI (uvicorn) process; the time from the publishing
commit until every client has the new revision. Target: p99 ≤ 0.5 s.

    python -m bench.propagation [--clients 1000]

The baseline, measured in the same run on the same server: the same clients each sending one plain GET of the
config at the same instant (a thundering herd that needs no notification), timed from the instant they fire.
A second figure runs publication the production way: the deployment's commit enqueues the job, an RQ worker
publishes, the clients are woken.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import psutil

from bench._report import Report, exit_code
from bench.deploy_site import ROOT, BenchSite, _raise_fd_limit

# The clients: one process, asyncio, raw HTTP/1.1 over N sockets. Prints "ready", waits for "go" on stdin,
# then (mode "wait") reads the long polls' answers, or (mode "plain") fires one GET per socket; finally prints
# [[time received, status, revision], …] as JSON.
CLIENTS = r"""
import asyncio, json, sys, time
port, scene, etag, key, count, mode = sys.argv[1:7]
count = int(count)

def request(wait):
    headers = f"Authorization: Token {key}\r\nConnection: close\r\n"
    if wait:
        headers += f"If-None-Match: {etag}\r\n"
    query = "?wait=60" if wait else ""
    return f"GET /api/v1/config/{scene}/{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()

async def answer(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":")[1])
    body = await reader.readexactly(length) if length else b""
    received = time.time()
    revision = json.loads(body)["revision"] if status == 200 else None
    return [received, status, revision]

async def main():
    connections = []
    for _ in range(count):
        connections.append(await asyncio.open_connection("127.0.0.1", int(port)))
    if mode == "wait":
        for _, writer in connections:
            writer.write(request(True))
        await asyncio.gather(*(writer.drain() for _, writer in connections))
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if mode == "plain":
        fired = time.time()
        for _, writer in connections:
            writer.write(request(False))
    results = await asyncio.gather(*(answer(reader) for reader, _ in connections))
    for _, writer in connections:
        writer.close()
    print(json.dumps({"fired": fired if mode == "plain" else None, "results": results}), flush=True)

asyncio.run(main())
"""


def _clients(base_port: int, scene: str, etag: str, key: str, count: int, mode: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", CLIENTS, str(base_port), scene, etag, key, str(count), mode],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_raise_fd_limit,
    )
    line = process.stdout.readline().strip()
    if line != "ready":
        raise RuntimeError(f"clients did not start: {line!r}")
    return process


def _finish(process: subprocess.Popen) -> dict:
    out, _ = process.communicate("go\n", timeout=120)
    return json.loads(out.strip().splitlines()[-1])


def _settle(pid: int, *, timeout: float = 60) -> None:
    """Wait until the server has taken every poll in (its CPU goes quiet)."""
    server = psutil.Process(pid)
    server.cpu_percent(None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.cpu_percent(interval=0.5) < 5:
            return
    raise RuntimeError("the server never went quiet")


def _percentiles(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {
        "p50": statistics.median(ordered),
        "p99": ordered[max(0, int(len(ordered) * 0.99) - 1)],
        "max": ordered[-1],
    }


def _report(label: str, latencies: list[float]) -> dict:
    figures = _percentiles(latencies)
    print(
        f"  {label:<44} p50 {figures['p50'] * 1000:7.1f} ms   p99 {figures['p99'] * 1000:7.1f} ms   "
        f"max {figures['max'] * 1000:7.1f} ms"
    )
    return figures


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument(
        "--app",
        default="mlabsite.asgi:application",
        help="the ASGI app; mlabsite.asgi:django_application serves long polls through Django's handler alone",
    )
    args = parser.parse_args(argv)

    site = BenchSite()
    try:
        seeded = site.seed(artifacts=[os.urandom(4096), os.urandom(4096)], fmt="bin")
        from apps.deploy.models import ConfigEntry
        from apps.deploy.services import deployment_create, scene_publish

        scene, key, user = seeded["scene"], seeded["client_key"], seeded["user"]
        base = site.uvicorn(app=args.app)
        port = int(base.rsplit(":", 1)[1])
        server_pid = site.processes[-1].pid
        print(f"{args.clients} clients, one uvicorn process serving {args.app}")

        # Baseline: every client sends a plain GET at once.
        etag = ConfigEntry.objects.get(scene=scene).etag
        herd = _finish(_clients(port, scene.name, etag, key, args.clients, "plain"))
        assert all(status == 200 for _, status, _ in herd["results"]), "baseline requests failed"
        baseline = _report("baseline: 1 plain GET each, at once", [t - herd["fired"] for t, _, _ in herd["results"]])

        # Long polls woken by an inline publication.
        clients = _clients(port, scene.name, etag, key, args.clients, "wait")
        _settle(server_pid)
        deployment_create(scene=scene, splits=[{"version": 1, "weight": 50}, {"version": 2, "weight": 50}], user=user)
        result = scene_publish(scene_id=scene.pk)
        woken = _finish(clients)
        assert all(status == 200 and revision == result.revision for _, status, revision in woken["results"]), (
            "a client did not get the new revision"
        )
        inline = _report(
            "commit of the config → every client", [t - result.committed_at for t, _, _ in woken["results"]]
        )

        # The production way: commit → on_commit enqueue → RQ worker → publish → clients.
        worker = [sys.executable, "manage.py", "rqworker", "default", "--serializer", "rq.serializers.JSONSerializer"]
        site.processes.append(subprocess.Popen(worker, cwd=ROOT, env=site.env(), stdout=subprocess.DEVNULL))
        time.sleep(3)  # the worker registers itself and starts listening
        etag = ConfigEntry.objects.get(scene=scene).etag
        clients = _clients(port, scene.name, etag, key, args.clients, "wait")
        _settle(server_pid)
        started = time.time()
        deployment = deployment_create(
            scene=scene, splits=[{"version": 1, "weight": 10}, {"version": 2, "weight": 90}], user=user
        )
        woken = _finish(clients)
        assert all(status == 200 and revision == deployment.revision for _, status, revision in woken["results"])
        queued = _report("deployment commit → RQ worker → every client", [t - started for t, _, _ in woken["results"]])

        print(f"\n  p99 ratio to the baseline's p99: {inline['p99'] / baseline['p99']:.2f}")
        print(f"  p99 ratio to the 0.5 s target: {inline['p99'] / 0.5:.2f} (target ≤ 1.00)")
        report = Report("propagation")
        report.check("commit → every client p99", inline["p99"] * 1000, at_most=500, unit="ms")
        report.note("baseline (plain GETs) p99", baseline["p99"] * 1000, unit="ms")
        report.note("commit → RQ worker → every client p99", queued["p99"] * 1000, unit="ms")
        return report
    finally:
        site.close()


if __name__ == "__main__":
    sys.exit(exit_code(main(), "propagation"))
