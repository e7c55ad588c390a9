"""Benchmark: a publication reaching every held long poll, Mlab against a bare async Django app (the anchor),
both under uvicorn with the same workers, driven by the same raw-socket clients in the same run.

    python -m bench.propagation [--workers 2] [--clients 1000,3000,8000] [--repeat 5]

For each count N, each side holds N long polls (``GET /api/v1/config/{scene}/?wait=60`` with ``If-None-Match``,
one connection each, from one client process: bench/poll_clients.py), spread by the kernel over the workers.
Once every poll is held (the workers own N connections and are idle), Mlab publishes a new deployment in this
process (``scene_publish``; the clock starts at the commit of the config row) and the anchor gets a Redis
PUBLISH (the clock starts just before it). The latency of a client is the time its answer arrived.

The anchor (bench/anchor_app.py): a Django view that awaits the next message of the process's one pub/sub
subscription and answers a constant JSON, the same bytes Mlab's config is. It does nothing Mlab must do
(authorization, revocation, the published revision), so it is the floor.

Reported per count: p50, p99 and max of both sides (the median over the repetitions; every repetition
printed), the ratio of the p99s (median of the ratios of each repetition; target ≤ 1.25), and the growth of
the workers' whole-process RSS per held poll (over the same workers before any poll was held; target ≤ 20
KiB). Every client must get the new revision: no error, no dropped connection.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from bench._report import Report, exit_code
from bench.deploy_site import ROOT, BenchSite, _raise_fd_limit, free_port

ANCHOR_CHANNEL = "bench:anchor"
RATIO_TARGET = 1.25
KIB_PER_POLL_TARGET = 20.0
WARM_UP_POLLS = 200


@dataclass
class Side:
    """One server under test: where its polls go and how a publication is made."""

    name: str
    port: int
    master: psutil.Process
    path: str
    authorization: str
    etag: Callable[[], str]
    publish: Callable[[], tuple[float, int]]  # → (wall-clock start of the publication, the revision clients expect)
    subscribed: Callable[[], bool]  # every worker listens
    baseline_rss: int = 0
    rounds: dict[int, list[dict]] = field(default_factory=dict)

    def workers(self) -> list[psutil.Process]:
        """The processes serving requests: uvicorn's workers, or uvicorn itself with one worker."""
        workers = [child for child in self.master.children() if child.cmdline()[-1] == "--multiprocessing-fork"]
        return workers or [self.master]


def _start_clients(side: Side, count: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.poll_clients",
            str(side.port),
            side.path,
            side.authorization,
            side.etag(),
            str(count),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_raise_fd_limit,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != "ready":
        raise RuntimeError(f"clients did not start: {line!r}")
    return process


def _finish(process: subprocess.Popen) -> dict:
    out, _ = process.communicate("go\n", timeout=300)
    return json.loads(out.strip().splitlines()[-1])


def _held_by_worker(side: Side) -> list[int]:
    """Connections to the side's port that each worker has accepted."""
    return [
        sum(
            1
            for c in worker.net_connections(kind="tcp")
            if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == side.port
        )
        for worker in side.workers()
    ]


def _held(side: Side) -> int:
    return sum(_held_by_worker(side))


def _settle(side: Side, count: int, *, timeout: float = 120) -> None:
    """Wait until the workers hold ``count`` polls, listen, and are idle (every request parsed and waiting)."""
    workers = side.workers()
    for worker in workers:
        worker.cpu_percent(None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        idle = all(worker.cpu_percent(None) < 5 for worker in workers)
        if idle and _held(side) >= count and side.subscribed():
            return
    raise RuntimeError(f"{side.name}: the workers never held {count} polls quietly (held {_held(side)})")


def _rss(side: Side) -> int:
    return sum(worker.memory_info().rss for worker in side.workers())


def _percentiles(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {
        "p50": statistics.median(ordered),
        "p99": ordered[max(0, int(len(ordered) * 0.99) - 1)],
        "max": ordered[-1],
    }


def _round(side: Side, count: int) -> dict:
    clients = _start_clients(side, count)
    _settle(side, count)
    rss = _rss(side)
    spread = [n for n in _held_by_worker(side) if n]
    cpu = _cpu(side)
    started, revision = side.publish()
    answers = _finish(clients)
    cpu = _cpu(side) - cpu
    results = answers["results"]
    wrong = [r for r in results if r[1] != 200 or r[2] != revision]
    if answers["error_count"] or wrong or len(results) != count:
        raise RuntimeError(
            f"{side.name}, {count} polls: {len(results)} answers, {len(wrong)} without revision {revision} "
            f"(first: {wrong[:3]}), {answers['error_count']} errors {answers['errors'][:3]}"
        )
    figures = _percentiles([received - started for received, _, _ in results])
    figures["kib_per_poll"] = (rss - side.baseline_rss) / 1024 / count
    figures["spread"] = spread
    figures["cpu_us_per_poll"] = cpu / count * 1e6
    return figures


def _cpu(side: Side) -> float:
    """CPU seconds the workers have used (user and system)."""
    return sum(sum(worker.cpu_times()[:2]) for worker in side.workers())


def _ms(figures: dict) -> str:
    return "   ".join(f"{key} {figures[key] * 1000:7.1f} ms" for key in ("p50", "p99", "max"))


def _median(rounds: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def _mlab_side(site: BenchSite, seeded: dict, workers: int, app: str) -> Side:
    from apps.deploy.models import ConfigEntry
    from apps.deploy.notify import revocation_channel
    from apps.deploy.services import deployment_create, scene_publish
    from mlabsite.locks import redis_connection

    scene, user = seeded["scene"], seeded["user"]
    port = free_port()
    _uvicorn(site, app, port, workers, site.env())
    weights = iter(range(1, 10**6))

    def publish() -> tuple[float, int]:
        weight = next(weights) % 99 + 1
        splits = [{"version": 1, "weight": weight}, {"version": 2, "weight": 100 - weight}]
        deployment_create(scene=scene, splits=splits, user=user)
        result = scene_publish(scene_id=scene.pk)
        assert result.committed_at is not None, result
        return result.committed_at, result.revision

    return Side(
        name="Mlab",
        port=port,
        master=psutil.Process(site.processes[-1].pid),
        path=f"/api/v1/config/{scene.name}/",
        authorization=f"Token {seeded['client_key']}",
        etag=lambda: ConfigEntry.objects.get(scene=scene).etag,
        publish=publish,
        subscribed=lambda: _subscribers(redis_connection(), revocation_channel(_db())) >= workers,
    )


def _anchor_side(site: BenchSite, seeded: dict, workers: int) -> Side:
    from apps.deploy.configs import config_body
    from apps.deploy.models import ConfigEntry
    from mlabsite.locks import redis_connection

    content = ConfigEntry.objects.get(scene=seeded["scene"]).content
    body_path = site.var_dir / "anchor.json"
    body_path.write_bytes(config_body(content))
    port = free_port()
    env = site.env(DJANGO_SETTINGS_MODULE="bench.anchor_settings", BENCH_ANCHOR_BODY=str(body_path))
    _uvicorn(site, "bench.anchor_app:application", port, workers, env)
    connection = redis_connection()

    def publish() -> tuple[float, int]:
        started = time.time()
        connection.publish(ANCHOR_CHANNEL, b"go")
        return started, content["revision"]

    def subscribed() -> bool:
        return _subscribers(connection, ANCHOR_CHANNEL) >= workers

    return Side(
        name="anchor",
        port=port,
        master=psutil.Process(site.processes[-1].pid),
        path="/api/v1/config/anchor/",
        authorization="Token none",
        etag=lambda: '"anchor"',
        publish=publish,
        subscribed=subscribed,
    )


def _subscribers(connection, channel: str) -> int:
    return dict(connection.pubsub_numsub(channel)).get(channel.encode(), 0)


def _db() -> int:
    from mlabsite.locks import redis_connection

    return int(redis_connection().connection_pool.connection_kwargs.get("db", 0) or 0)


def _uvicorn(site: BenchSite, app: str, port: int, workers: int, env: dict) -> None:
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers), "--lifespan", "off", "--no-access-log", "--log-level", "warning"]
    site.start(command, port=port, env=env)
    master = psutil.Process(site.processes[-1].pid)
    deadline = time.monotonic() + 60
    while workers > 1 and len(master.children()) < workers + 1:  # and multiprocessing's resource tracker
        if time.monotonic() > deadline:
            raise RuntimeError(f"{app}: {len(master.children())} of {workers} workers started")
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers of each side")
    parser.add_argument("--clients", default="1000,3000,8000", help="comma-separated counts of held polls")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per count and side")
    parser.add_argument("--app", default="mlabsite.asgi:application", help="Mlab's ASGI application")
    parser.add_argument("--bench-name", default="propagation", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.clients.split(",")]
    _raise_fd_limit()

    site = BenchSite()
    try:
        seeded = site.seed(artifacts=[os.urandom(4096), os.urandom(4096)], fmt="bin")
        sides = [_mlab_side(site, seeded, args.workers, args.app), _anchor_side(site, seeded, args.workers)]
        print(f"{args.workers} uvicorn workers per side; {args.repeat} round(s) per count and side")
        for side in sides:  # every worker answers once and listens before anything is measured
            _round(side, WARM_UP_POLLS)
            side.baseline_rss = _rss(side)
        for count in counts:
            print(f"\n{count} held polls")
            for repetition in range(args.repeat):
                order = sides if repetition % 2 == 0 else sides[::-1]
                for side in order:
                    figures = _round(side, count)
                    side.rounds.setdefault(count, []).append(figures)
                    print(
                        f"  {side.name:<7} {_ms(figures)}   RSS {figures['kib_per_poll']:5.1f} KiB/poll   "
                        f"CPU {figures['cpu_us_per_poll']:4.0f} µs/poll   "
                        f"polls per worker {'/'.join(map(str, figures['spread']))}",
                        flush=True,
                    )
        return _report(args.bench_name, sides, counts)
    finally:
        site.close()


def _report(name: str, sides: list[Side], counts: list[int]) -> Report:
    mlab, anchor = sides
    report = Report(name)
    print()
    for count in counts:
        ratios = [m["p99"] / a["p99"] for m, a in zip(mlab.rounds[count], anchor.rounds[count], strict=True)]
        ratio = statistics.median(ratios)
        print(
            f"{count:>6} polls  p99 Mlab / anchor: {ratio:.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)}); "
            + "; ".join(
                f"{side.name} p50/p99/max "
                + "/".join(f"{_median(side.rounds[count], key) * 1000:.0f}" for key in ("p50", "p99", "max"))
                + f" ms, CPU {_median(side.rounds[count], 'cpu_us_per_poll'):.0f} µs/poll"
                for side in sides
            )
        )
        # Every round raised unless every client got the new revision: this row says all of them did.
        report.check(f"{count} polls: clients with the new revision", 1.0, at_least=1.0, unit="×")
        report.check(f"{count} polls: p99 Mlab / anchor", ratio, at_most=RATIO_TARGET, unit="×")
        for side in sides:
            for key in ("p50", "p99", "max"):
                report.note(f"{count} polls: {side.name} {key}", _median(side.rounds[count], key) * 1000, unit="ms")
            report.note(
                f"{count} polls: {side.name} CPU per poll", _median(side.rounds[count], "cpu_us_per_poll"), unit="µs"
            )
        report.check(
            f"{count} polls: Mlab RSS per held poll",
            max(r["kib_per_poll"] for r in mlab.rounds[count]),
            at_most=KIB_PER_POLL_TARGET,
            unit="KiB",
        )
        report.note(
            f"{count} polls: anchor RSS per held poll", max(r["kib_per_poll"] for r in anchor.rounds[count]), unit="KiB"
        )
    return report


if __name__ == "__main__":
    sys.exit(exit_code(main(), "propagation"))
