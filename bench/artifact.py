"""Benchmark: fetching a 50 MiB artifact through the artifact endpoint (cache warm, every chunk verified by the
server) against a raw Redis GET of the same bytes, in the same run. Target: ratio ≤ 1.5.

    python -m bench.artifact [--mib 50] [--rounds 5]

Served by uvicorn (ASGI, how Mlab is served) and by gunicorn's sync worker (WSGI).
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import time

from bench._report import Report, exit_code
from bench.deploy_site import BenchSite, free_port


def fetch(port: int, path: str, key: str) -> float:
    """Seconds to GET ``path`` and read the whole body."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", path, headers={"Authorization": f"Token {key}"})
    response = connection.getresponse()
    size = 0
    while block := response.read(1 << 20):
        size += len(block)
    connection.close()
    elapsed = time.perf_counter() - started
    if response.status != 200 or size != int(response.headers["Content-Length"]):
        raise RuntimeError(f"bad download: {response.status}, {size} bytes")
    return elapsed


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    site = BenchSite()
    try:
        data = os.urandom(args.mib * 1024 * 1024)
        seeded = site.seed(artifacts=[data], fmt="bin")
        from apps.artifacts.storage import artifact_cache_warm
        from apps.deploy.models import ModelVersion
        from mlabsite.locks import redis_connection

        scene = seeded["scene"]
        artifact_cache_warm(ModelVersion.objects.get(scene=scene, version=1).artifact)
        redis = redis_connection()
        redis.set("bench:artifact:raw", data)
        path = f"/api/v1/scenes/{scene.name}/versions/1/artifact/"
        servers = {"uvicorn (ASGI)": int(site.uvicorn().rsplit(":", 1)[1])}
        port = free_port()
        command = [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}"]
        site.start([*command, "--log-level", "warning", "mlabsite.wsgi:application"], port=port)
        servers["gunicorn sync (WSGI)"] = port

        timings: dict[str, list[float]] = {"raw Redis GET": [], **{name: [] for name in servers}}
        for server_port in servers.values():  # warm up
            fetch(server_port, path, seeded["client_key"])
        for _ in range(args.rounds):
            started = time.perf_counter()
            assert len(redis.get("bench:artifact:raw")) == len(data)
            timings["raw Redis GET"].append(time.perf_counter() - started)
            for name, server_port in servers.items():
                timings[name].append(fetch(server_port, path, seeded["client_key"]))
        medians = {name: statistics.median(values) for name, values in timings.items()}
        print(f"{args.mib} MiB artifact, median of {args.rounds}")
        for name, seconds in medians.items():
            print(f"  {name:<22} {seconds * 1000:8.1f} ms   {args.mib / seconds:7.0f} MiB/s")
        report = Report("artifact")
        for name in servers:
            ratio = medians[name] / medians["raw Redis GET"]
            report.check(f"{name} / raw Redis GET", ratio, at_most=1.5, unit="×")
            print(f"  ratio {name} / raw Redis GET: {ratio:.2f} (target ≤ 1.5)")
        redis.delete("bench:artifact:raw")
        return report
    finally:
        site.close()


if __name__ == "__main__":
    sys.exit(exit_code(main(), "artifact"))
