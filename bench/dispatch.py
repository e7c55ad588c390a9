"""Enqueue → job start latency with a running RQ worker. Target: p50 ≤ 50 ms.

    python -m bench.dispatch [--jobs 200] [--warmup 10]

The worker is the one ``mlabsite.serve`` runs (its very command: ``manage.py rqworker default
--with-scheduler`` with the JSON serializer, so ``apps.training.worker.MlabWorker``, which forks a horse per
job), on a throwaway Mlab (its own SQLite and embedded Redis unless DATABASE_URL / REDIS_URL are set).
Jobs are enqueued the way a run is: ``transaction.on_commit`` → django-rq's ``default`` queue, one at a
time (each waits for the previous one to start, so the figure is dispatch, not queueing). The clock starts
just before the transaction commits and stops at the first line of the job function, in the horse.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import time
import uuid

from bench._report import Report, exit_code

P50_TARGET_MS = 50.0
RESULT_TIMEOUT = 30  # seconds a job may take to start before the bench gives up


def probe(sent: float, key: str) -> None:
    """The job: note when it started (first thing), then hand the two instants back over Redis."""
    started = time.time()
    from django_redis import get_redis_connection

    get_redis_connection("default").rpush(key, json.dumps([sent, started]))


def _enqueue_on_commit(key: str) -> None:
    import django_rq
    from django.db import transaction

    queue = django_rq.get_queue("default")
    with transaction.atomic():
        sent = time.time()
        # By name: run as ``python -m bench.dispatch``, this module is __main__, which a worker cannot import.
        job = functools.partial(queue.enqueue, "bench.dispatch.probe", sent, key, description="dispatch probe")
        transaction.on_commit(job)


def _latency(redis, key: str) -> float:
    _enqueue_on_commit(key)
    answer = redis.blpop([key], timeout=RESULT_TIMEOUT)
    if answer is None:
        raise RuntimeError(f"no job started within {RESULT_TIMEOUT} s: is the worker running?")
    sent, started = json.loads(answer[1])
    return started - sent


def _wait_for_worker(queue, process: subprocess.Popen, timeout: float = 60) -> None:
    from rq import Worker

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Worker.all(queue=queue):
            return
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited with {process.returncode}")
        time.sleep(0.1)
    raise RuntimeError("the worker did not register within a minute")


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args(argv)

    from bench.deploy_site import ROOT, BenchSite

    site = BenchSite()
    try:
        import django_rq
        from django_redis import get_redis_connection

        from mlabsite.serve import commands

        worker_command = commands("127.0.0.1", 0, 1)[1]
        log = site.var_dir / "worker.log"
        with open(log, "w") as stderr:
            worker = subprocess.Popen(worker_command, cwd=ROOT, env=site.env(), stdout=stderr, stderr=stderr)
        site.processes.append(worker)
        try:
            _wait_for_worker(django_rq.get_queue("default"), worker)
            redis = get_redis_connection("default")
            key = f"bench:dispatch:{uuid.uuid4().hex}"
            for _ in range(args.warmup):  # the worker's first jobs import the job's module
                _latency(redis, key)
            latencies = sorted(_latency(redis, key) * 1000 for _ in range(args.jobs))
            redis.delete(key)
        except Exception:
            print(f"The worker's log ends:\n{log.read_text()[-3000:]}", file=sys.stderr)
            raise
    finally:
        site.close()

    figures = {p: percentile(latencies, p / 100) for p in (50, 90, 99)}
    print(f"{args.jobs} jobs, one at a time, after {args.warmup} warm-up jobs; worker: {' '.join(worker_command[1:])}")
    print(
        f"  enqueue (on commit) → job start: p50 {figures[50]:.1f} ms   p90 {figures[90]:.1f} ms   "
        f"p99 {figures[99]:.1f} ms   max {latencies[-1]:.1f} ms   mean {statistics.fmean(latencies):.1f} ms"
    )
    report = Report("dispatch")
    ok = report.check("enqueue → start p50", figures[50], at_most=P50_TARGET_MS, unit="ms")
    report.note("enqueue → start p90", figures[90], unit="ms")
    report.note("enqueue → start p99", figures[99], unit="ms")
    print(f"  p50 {figures[50]:.1f} ms (target ≤ {P50_TARGET_MS:g} ms) {'ok' if ok else 'MISSED'}")
    return report


if __name__ == "__main__":
    raise SystemExit(exit_code(main(), "dispatch"))
