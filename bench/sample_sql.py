"""The generated sample SQL against the same query written by hand, on 1,000,000 demo impressions (DuckDB).

Generated path: the built-in click sample's parameters → sqlglot tree → DuckDB SQL → the engine's chunked
fetch into SampleData (float64 features, interned categorical strings, float64 label).
Baseline: the same query written by hand, run on a plain DuckDB connection with ``fetchnumpy()``.

Prints the time ratio (target ≤ 1.1) and the peak memory growth of the fetch over the bytes of the arrays it
returns (target ≤ 1.5). Set MLAB_BENCH_IMPRESSIONS to change the size.
"""

from __future__ import annotations

import gc
import os
import statistics
import threading
import time
from pathlib import Path

import duckdb
import psutil

from bench._report import Report, exit_code

ROOT = Path(__file__).resolve().parents[1]
IMPRESSIONS = int(os.environ.get("MLAB_BENCH_IMPRESSIONS", "1000000"))
REPEATS = 5

HAND_WRITTEN = """
SELECT CAST(u.age AS DOUBLE) AS age, CAST(u.signup_days AS DOUBLE) AS signup_days,
       CAST(u.is_vip AS DOUBLE) AS is_vip, CAST(i.price AS DOUBLE) AS price,
       CAST(i.seller_rating AS DOUBLE) AS seller_rating, CAST(i.discount AS DOUBLE) AS discount,
       CAST(m.position AS DOUBLE) AS position, CAST(m."hour" AS DOUBLE) AS "hour",
       u.gender, u.city_tier, i.category,
       CASE WHEN m.clicked = 1 THEN 1 ELSE 0 END AS clicked
FROM impressions m
LEFT JOIN users u ON m.user_id = u.user_id
LEFT JOIN items i ON m.item_id = i.item_id
WHERE m.clicked IS NOT NULL
"""


class PeakRss:
    """Samples the process's resident memory every millisecond while the block runs."""

    def __enter__(self):
        self.process = psutil.Process()
        self.base = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.base


def _warehouse() -> Path:
    from apps.demo.warehouse import build_demo_warehouse

    path = ROOT / "var" / "bench" / f"warehouse-{IMPRESSIONS}.duckdb"
    started = time.perf_counter()
    summary = build_demo_warehouse(path, impressions=IMPRESSIONS)
    if summary.created:
        print(f"built {path} ({IMPRESSIONS:,} impressions) in {time.perf_counter() - started:.1f} s")
    return path


def _generated(path: Path):
    # The back end checks the file against MLAB_DUCKDB_ROOTS (the settings' var/, where the warehouse is).
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlabsite.settings.base")
    import django

    django.setup()
    from apps.templates.builtins import DEMO_SAMPLE
    from apps.templates.nodes import registry
    from apps.training.datasources import DuckDBBackend
    from apps.training.sql import build_sample_query

    engine = DuckDBBackend(name="bench", options={"path": str(path)})
    columns = engine.introspect()  # cached in Redis in the service; not part of the query
    chunk_rows = registry.get("sample.sql").param_map["chunk_rows"].default  # what a run uses
    cleaned = {
        "joins": [],
        "filters": [],
        "partition_column": None,
        "date_from": None,
        "date_to": None,
        "negative_ratio": 1.0,
        "sample_key": [],
        "limit": None,
        **DEMO_SAMPLE,
    }

    def run():
        query = build_sample_query(cleaned, columns=columns, task="binary")
        return engine.fetch(
            query.sql("duckdb", pretty=False), columns=query.columns, chunk_rows=chunk_rows, timeout=600
        )

    return run


def _hand_written(path: Path):
    def run():
        con = duckdb.connect(str(path), read_only=True)
        try:
            return con.execute(HAND_WRITTEN).fetchnumpy()
        finally:
            con.close()

    return run


def _timed(run) -> float:
    gc.collect()
    started = time.perf_counter()
    result = run()
    elapsed = time.perf_counter() - started
    del result
    return elapsed


def main() -> Report:
    report = Report("sample_sql")
    path = _warehouse()
    generated, hand = _generated(path), _hand_written(path)
    generated(), hand()  # warm the file cache and both code paths
    times = {"generated": [], "hand": []}
    for _ in range(REPEATS):  # interleaved, so that drift hits both alike
        times["generated"].append(_timed(generated))
        times["hand"].append(_timed(hand))
    g, h = statistics.median(times["generated"]), statistics.median(times["hand"])
    print(f"rows: {IMPRESSIONS:,}; median of {REPEATS}: generated {g:.3f} s, hand-written {h:.3f} s")
    print(f"time ratio generated / hand-written: {g / h:.2f} (target <= 1.10)")
    report.check("time ratio generated / hand-written", g / h, at_most=1.10, unit="×")

    gc.collect()
    with PeakRss() as memory:
        sample = generated()
    arrays = sample.nbytes
    print(
        f"fetch peak RSS growth {memory.growth / 2**20:.1f} MiB for {arrays / 2**20:.1f} MiB of arrays "
        f"({len(sample):,} rows): ratio {memory.growth / arrays:.2f} (target <= 1.50)"
    )
    report.check("fetch peak RSS growth / arrays", memory.growth / arrays, at_most=1.50, unit="×")
    del sample
    gc.collect()
    with PeakRss() as memory:
        baseline = hand()
    size = sum(a.nbytes for a in baseline.values())
    print(f"(hand-written fetchnumpy: peak RSS growth {memory.growth / 2**20:.1f} MiB for {size / 2**20:.1f} MiB)")
    return report


if __name__ == "__main__":
    raise SystemExit(exit_code(main(), "sample_sql"))
