"""Benchmark: the authenticated config endpoint (200 and 304 paths, client token) against a bare Django view
returning the same JSON, under gunicorn, in the same run. Targets: WSGI ≥ 0.9×, ASGI ≥ 1.0× the bare view
(the median of the ratios of ``--rounds`` rounds).

    python -m bench.poll [--seconds 3] [--rounds 3] [--threads 4]

Measured with gunicorn's sync worker (WSGI: the sync view) and with gunicorn running uvicorn's worker (ASGI,
as `make run` serves: the config is answered by the door, apps/deploy/longpoll.py; the bare view by
Django's ASGI handler), one worker process each. In each round every case runs for ``--seconds`` in turn,
so that the machine's drift hits the cases of a round alike; a round's ratio compares its own cases.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import threading
import time

import psutil

from bench._report import Report, exit_code
from bench.deploy_site import BenchSite, free_port

TARGETS = {"WSGI": 0.9, "ASGI": 1.0}
SLICE_SECONDS = 0.5


def hammer(port: int, path: str, headers: dict, *, seconds: float, threads: int, expect: int) -> float:
    """Requests per second from ``threads`` clients for ``seconds`` (keep-alive when the server allows)."""
    counts = [0] * threads
    failures = []
    stop_at = time.monotonic() + seconds

    def client(slot: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop_at:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != expect:
                failures.append(response.status)
                return
            counts[slot] += 1
            if response.will_close:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.close()

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise RuntimeError(f"{path}: expected {expect}, got {failures[0]}")
    return sum(counts) / (time.monotonic() - started)


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)

    site = BenchSite(settings_module="bench.poll_settings")
    try:
        seeded = site.seed(artifacts=[os.urandom(2048), os.urandom(2048)], fmt="bin")
        from apps.deploy.models import ConfigEntry
        from apps.deploy.services import deployment_create, scene_publish

        scene = seeded["scene"]
        deployment_create(scene=scene, splits=[{"version": 1, "weight": 90}, {"version": 2, "weight": 10}], user=None)
        scene_publish(scene_id=scene.pk)
        entry = ConfigEntry.objects.get(scene=scene)
        from apps.deploy.configs import config_body

        body_path = site.var_dir / "bare.json"
        body_path.write_bytes(config_body(entry.content))
        env = site.env(DJANGO_SETTINGS_MODULE="bench.poll_settings", BENCH_BARE_BODY=str(body_path))
        auth = {"Authorization": f"Token {seeded['client_key']}"}
        cases = {
            "bare view": (f"/bench/bare/{scene.name}/", {}, 200),
            "config 200": (f"/api/v1/config/{scene.name}/", auth, 200),
            "config 304": (f"/api/v1/config/{scene.name}/", {**auth, "If-None-Match": entry.etag}, 304),
        }
        print(
            f"config {len(body_path.read_bytes())} bytes; {args.threads} client threads, {args.rounds}×{args.seconds}s"
        )
        report = Report("poll")
        for label, worker_class, app in (
            ("gunicorn sync worker (WSGI)", "sync", "mlabsite.wsgi:application"),
            ("gunicorn + uvicorn worker (ASGI)", "uvicorn.workers.UvicornWorker", "mlabsite.asgi:application"),
        ):
            port = free_port()
            command = [sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", worker_class]
            command += ["--bind", f"127.0.0.1:{port}", "--log-level", "warning", app]
            site.start(command, port=port, env=env)
            for path, headers, expect in cases.values():  # warm up
                hammer(port, path, headers, seconds=0.5, threads=args.threads, expect=expect)
            server = psutil.Process(site.processes[-1].pid).children()[0]  # gunicorn's one worker
            rounds, cpu = [], dict.fromkeys(cases, 0.0)
            for _ in range(args.rounds):
                done = {name: [0.0, 0.0] for name in cases}  # requests, seconds
                for _ in range(max(1, round(args.seconds / SLICE_SECONDS))):  # the cases take turns
                    for name, (path, headers, expect) in cases.items():
                        used = sum(server.cpu_times()[:2])
                        rate = hammer(port, path, headers, seconds=SLICE_SECONDS, threads=args.threads, expect=expect)
                        cpu[name] += sum(server.cpu_times()[:2]) - used
                        done[name][0] += rate * SLICE_SECONDS
                        done[name][1] += SLICE_SECONDS
                rounds.append({name: requests / seconds for name, (requests, seconds) in done.items()})
            worker = "WSGI" if worker_class == "sync" else "ASGI"
            target = TARGETS[worker]
            print(f"\n{label}")
            for name in cases:
                served = sum(r[name] for r in rounds) * args.seconds
                print(
                    f"  {name:<12} {'  '.join(f'{r[name]:6.0f}' for r in rounds)} req/s   "
                    f"server CPU {cpu[name] / served * 1e6:5.0f} µs/request"
                )
            for name in ("config 200", "config 304"):
                ratios = [r[name] / r["bare view"] for r in rounds]
                ratio = statistics.median(ratios)
                report.check(
                    f"{worker}: {name} / bare view (median of {len(ratios)})", ratio, at_least=target, unit="×"
                )
                print(
                    f"  ratio {name} / bare view: {ratio:.2f} (rounds {', '.join(f'{r:.2f}' for r in ratios)}; "
                    f"target ≥ {target})"
                )
            site.processes.pop().terminate()
        return report
    finally:
        site.close()


if __name__ == "__main__":
    sys.exit(exit_code(main(), "poll"))
