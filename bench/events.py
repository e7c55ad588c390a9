"""A/B events: what one web process takes in, how far behind the aggregation runs, how fast results answer.

1. **ingest**: one uvicorn process (one worker) and the events door; ``--senders`` threads post batches of 500
   events (250 new units: an exposure and an outcome each) as fast as it answers, for ``--seconds``, no
   aggregation running (its stream limit raised out of the way). Target: ≥ 20,000 events/s.
2. **lag**: the same door and an RQ worker (``mlabsite.serve``'s: the deploy worker class, JSON serializer),
   batches sent at a steady 20,000 events/s for ``--seconds``; a batch's lag is from its stream entry's id (the
   moment Redis appended it) to its ``EventBatch.aggregated_at`` (written last in the transaction that counted
   it). Target: p99 ≤ 5 s; the backlog must be drained at the end.
3. **results**: a scene whose aggregated rows hold 10,000,000 exposures (2 versions × 40 days, 6,000,000 units;
   sketches made by PFADDing every unit id, per day and per version, histograms, outcomes) answers ``GET …/results/`` through uvicorn;
   baseline: a bare ``/healthz``. Target: p99 ≤ 200 ms. The rows are written directly (counting 10M events
   first would take minutes and measures nothing more about the read).

    python -m bench.events [--seconds 20] [--senders 4] [--requests 40]

A throwaway Mlab (bench/deploy_site.py): its own SQLite and embedded Redis unless DATABASE_URL / REDIS_URL are
set. The load runs in this process's threads, on the same machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import requests

from bench._report import Report, exit_code

ROOT = Path(__file__).resolve().parents[1]
PER_BATCH = 500
INGEST_TARGET = 20_000
LAG_TARGET = 5.0
RESULTS_TARGET_MS = 200.0
RESULTS_EXPOSURES = 10_000_000
RESULTS_DAYS = 40  # 10,000,000 / (2 × 40) = 125,000 exposures a row


def body(batch_id: str, prefix: str, ts: float) -> bytes:
    units = [f"{prefix}-{i}" for i in range(PER_BATCH // 2)]
    events = [
        {"type": "exposure", "unit_id": u, "revision": 1, "version": 1 + i % 2, "score": (i % 97) / 97, "ts": ts}
        for i, u in enumerate(units)
    ] + [
        {
            "type": "outcome",
            "unit_id": u,
            "revision": 1,
            "version": 1 + i % 2,
            "metric": "click",
            "value": i % 2,
            "ts": ts,
        }
        for i, u in enumerate(units)
    ]
    return json.dumps({"batch": batch_id, "events": events}).encode()


class Senders:
    """Threads posting batches to the events door; ``rate`` batches/s in all (None: as fast as it answers)."""

    def __init__(self, url: str, token: str, *, threads: int, rate: float | None, seconds: float, tag: str) -> None:
        self.url, self.token, self.threads, self.rate, self.seconds, self.tag = url, token, threads, rate, seconds, tag
        self.accepted = 0
        self.refused = 0
        self.lock = threading.Lock()

    def run(self) -> float:
        started = time.monotonic()
        workers = [threading.Thread(target=self._send, args=(i, started)) for i in range(self.threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return time.monotonic() - started

    def _send(self, index: int, started: float) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}
        sent = 0
        while True:
            now = time.monotonic()
            if now - started >= self.seconds:
                return
            if self.rate is not None:  # this thread's share of a steady rate
                due = started + sent * self.threads / self.rate
                if due > now:
                    time.sleep(due - now)
            batch_id = f"{self.tag}{index}x{sent:07d}"
            data = body(batch_id, batch_id, time.time())
            answer = session.post(self.url, data=data, headers=headers, timeout=30)
            with self.lock:
                if answer.status_code == 202:
                    self.accepted += 1
                else:
                    self.refused += 1
            sent += 1


def ingest(site, scene, token: str, seconds: float, senders: int) -> float:
    env = site.env(MLAB_EVENTS_STREAM_LIMIT="1000000")
    base = site.uvicorn(env=env)
    url = f"{base}/api/v1/scenes/{scene.name}/events/"
    Senders(url, token, threads=senders, rate=None, seconds=2, tag="warm").run()
    load = Senders(url, token, threads=senders, rate=None, seconds=seconds, tag="ingest")
    elapsed = load.run()
    rate = load.accepted * PER_BATCH / elapsed
    print(
        f"ingest: {load.accepted:,} batches of {PER_BATCH} in {elapsed:.1f}s with {senders} senders: {rate:,.0f} events/s"
    )
    if load.refused:
        print(f"  ({load.refused} answers other than 202)")
    return rate


def lag(site, scene, token: str, seconds: float, senders: int) -> tuple[list[float], int]:
    """Per batch, seconds from its append to the commit of its counting, at INGEST_TARGET events/s."""
    from django.conf import settings
    from django_redis import get_redis_connection

    from apps.deploy.models import EventBatch
    from mlab_client import contract

    redis = get_redis_connection("default")
    redis.delete(contract.events_stream_key(scene.name))  # the ingest run's batches are not this run's
    base = site.uvicorn()
    worker = site.worker()
    url = f"{base}/api/v1/scenes/{scene.name}/events/"
    # Warm up: the worker has started (and counted a first batch) before the measured load begins.
    Senders(url, token, threads=1, rate=None, seconds=0.01, tag="warm-lag").run()
    deadline = time.monotonic() + 60
    while not EventBatch.objects.filter(scene=scene, batch_id__startswith="warm-lag").exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the worker counted nothing in 60 s")
        time.sleep(0.2)
    load = Senders(url, token, threads=senders, rate=INGEST_TARGET / PER_BATCH, seconds=seconds, tag="lag")
    elapsed = load.run()
    print(
        f"lag: {load.accepted:,} batches sent in {elapsed:.1f}s ({load.accepted * PER_BATCH / elapsed:,.0f} events/s)"
    )
    deadline = time.monotonic() + 120
    rows = EventBatch.objects.filter(scene=scene, batch_id__startswith="lag")
    while rows.count() < load.accepted and time.monotonic() < deadline:
        time.sleep(0.5)
    counted = rows.count()
    lags = [
        at.timestamp() - int(entry.split("-")[0]) / 1000 for entry, at in rows.values_list("entry_id", "aggregated_at")
    ]
    worker.terminate()
    print(f"  {counted:,} of them counted; settings: chunk of {settings.MLAB_EVENTS_AGGREGATE_SECONDS:g} s per job")
    return lags, load.accepted - counted


def results_scene(site, user):
    """A scene whose aggregated rows hold RESULTS_EXPOSURES exposures."""
    import datetime

    from django_redis import get_redis_connection

    from apps.deploy.models import ExposureDay, OutcomeDay, VersionSketch
    from apps.deploy.services import deployment_create, model_version_register, scene_create, scene_publish
    from apps.deploy.tests.onnx_models import binary_model
    from tests.factories import TrainingRunFactory

    redis = get_redis_connection("default")
    scene = scene_create(name=f"bench-results-{uuid.uuid4().hex[:6]}", user=user)
    for seed in (1, 2):
        run = TrainingRunFactory(owner=user, artifact_bytes=binary_model(seed).onnx_bytes)
        model_version_register(run=run, scene=scene, user=user)
    deployment_create(scene=scene, splits=[{"version": 1, "weight": 50}, {"version": 2, "weight": 50}], user=user)
    scene_publish(scene_id=scene.pk)
    rng = np.random.default_rng(0)
    per_row = RESULTS_EXPOSURES // (2 * RESULTS_DAYS)
    new_per_row = per_row * 6 // 10
    first = datetime.date(2026, 9, 1)
    started = time.monotonic()
    unit = 0
    version_keys = {version: f"bench:hll:v{version}:{uuid.uuid4().hex}" for version in (1, 2)}
    for day_index in range(RESULTS_DAYS):
        day = first + datetime.timedelta(days=day_index)
        for version in (1, 2):
            key = f"bench:hll:{uuid.uuid4().hex}"
            pipe = redis.pipeline(transaction=False)
            # the day's active units of the version: its new units and some of the days before
            first_new = day_index * new_per_row
            active = list(range(first_new, first_new + new_per_row)) + list(
                range(max(0, first_new - new_per_row // 2), first_new)
            )
            for start in range(0, len(active), 5000):
                pipe.pfadd(key, *[f"v{version}-u{n}" for n in active[start : start + 5000]])
            pipe.get(key)
            pipe.pfcount(key)
            pipe.pfmerge(version_keys[version], version_keys[version], key)
            pipe.delete(key)
            sketch, active_units = pipe.execute()[-4:-2]
            unit += new_per_row
            scored = rng.multinomial(new_per_row, np.full(1000, 1 / 1000)).astype("<i8")
            converted = int(new_per_row * (0.12 + 0.01 * version))
            positives = np.minimum(rng.multinomial(converted, np.linspace(0.2, 1.8, 1000) / 1000), scored)
            ExposureDay.objects.create(
                scene=scene,
                revision=1,
                version=version,
                day=day,
                exposures=per_row,
                units=new_per_row,
                score_bins=scored.tobytes(),
                sketch=sketch,
                active_units=active_units,
            )
            OutcomeDay.objects.create(
                scene=scene,
                revision=1,
                version=version,
                metric="click",
                day=day,
                outcomes=converted,
                converted=int(positives.sum()),
                value_sum=float(positives.sum()),
                value_sumsq=float(positives.sum()),
                positive_bins=positives.astype("<i8").tobytes(),
            )
    for version, key in version_keys.items():
        VersionSketch.objects.create(
            scene=scene, revision=1, version=version, sketch=redis.get(key), active_units=redis.pfcount(key)
        )
        redis.delete(key)
    print(
        f"results: {RESULTS_EXPOSURES:,} exposures of {unit:,} units in rows, made in {time.monotonic() - started:.0f}s"
    )
    return scene


def results_latency(site, scene, token: str, requests_count: int) -> tuple[list[float], list[float]]:
    base = site.uvicorn()
    session = requests.Session()
    headers = {"Authorization": f"Token {token}"}
    url = f"{base}/api/v1/scenes/{scene.name}/results/"
    answer = session.get(url, headers=headers, timeout=30)
    answer.raise_for_status()
    units = sum(v["units"] for v in answer.json()["versions"])
    exposures = sum(v["exposures"] for v in answer.json()["versions"])
    assert exposures == RESULTS_EXPOSURES, exposures
    estimates = [v["active_units_estimate"] for v in answer.json()["versions"]]
    assert all(e and abs(e - units / 2) < 0.03 * units for e in estimates), estimates
    timings, baseline = [], []
    for _ in range(requests_count):
        started = time.perf_counter()
        session.get(url, headers=headers, timeout=30).raise_for_status()
        timings.append(time.perf_counter() - started)
        started = time.perf_counter()
        session.get(f"{base}/healthz", timeout=30)
        baseline.append(time.perf_counter() - started)
    print(
        f"  results of {exposures:,} exposures ({units:,} units) in {statistics.median(timings) * 1000:.0f} ms (median)"
    )
    return timings, baseline


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from bench.deploy_site import BenchSite

    report = Report("events")
    site = BenchSite()
    try:
        from apps.deploy.tests.onnx_models import binary_model

        seeded = site.seed(artifacts=[binary_model(1).onnx_bytes, binary_model(2).onnx_bytes])
        scene, user = seeded["scene"], seeded["user"]
        from apps.deploy.services import deployment_create, scene_publish

        deployment_create(scene=scene, splits=[{"version": 1, "weight": 50}, {"version": 2, "weight": 50}], user=user)
        scene_publish(scene_id=scene.pk)
        rate = ingest(site, scene, seeded["client_key"], args.seconds, args.senders)
        report.check("ingest, one web process (events/s)", rate, at_least=INGEST_TARGET, unit="/s")
        site.stop_servers()
        lags, left = lag(site, scene, seeded["client_key"], args.seconds, args.senders)
        report.note("lag p50 at 20,000 events/s", percentile(lags, 50), unit="s")
        report.check(
            "lag p99 at 20,000 events/s",
            percentile(lags, 99) if not left else float("inf"),
            at_most=LAG_TARGET,
            unit="s",
        )
        site.stop_servers()
        big = results_scene(site, user)
        timings, baseline = results_latency(site, big, seeded["token"], args.requests)
        report.note("results p50, 10M exposures", percentile(timings, 50) * 1000, unit="ms")
        report.check("results p99, 10M exposures", percentile(timings, 99) * 1000, at_most=RESULTS_TARGET_MS, unit="ms")
        report.note("baseline /healthz p50", percentile(baseline, 50) * 1000, unit="ms")
    finally:
        site.close()
    return report


if __name__ == "__main__":
    raise SystemExit(exit_code(main(sys.argv[1:])))
