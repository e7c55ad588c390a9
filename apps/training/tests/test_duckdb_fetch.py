"""The DuckDB fetch's prefetching thread: same batches in the same order, errors raised in the caller, and
no thread left reading a connection after the caller stopped."""

from __future__ import annotations

import threading

import duckdb
import pyarrow as pa
import pytest

from apps.training.datasources import QueryTimeout
from apps.training.datasources.duckdb_backend import _PREFETCH_BATCHES, DuckDBBackend, _prefetched
from apps.training.datasources.sample_data import SampleColumns


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "duckdb-prefetch"]


def test_batches_arrive_whole_and_in_order_from_a_real_query(tmp_path):
    con = duckdb.connect()
    con.execute("SET threads = 1")
    reader = con.sql("SELECT range AS n FROM range(100000)").to_arrow_reader(1000)
    values = [v for batch in _prefetched(reader) for v in batch.column(0).to_pylist()]
    assert values == list(range(100000))
    assert not _prefetch_threads()


def test_an_error_in_the_producer_is_raised_in_the_caller_after_the_batches_before_it():
    def reader():
        yield pa.record_batch([pa.array([1, 2])], names=["n"])
        raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")

    seen = []
    with pytest.raises(duckdb.InterruptException):
        for batch in _prefetched(reader()):
            seen.append(batch.num_rows)
    assert seen == [2]
    assert not _prefetch_threads()


def test_a_caller_that_stops_early_stops_the_producer_and_bounds_what_was_read():
    produced = []

    def reader():
        for index in range(1000):
            produced.append(index)
            yield pa.record_batch([pa.array([index])], names=["n"])

    batches = _prefetched(reader())
    assert next(batches).column(0).to_pylist() == [0]
    batches.close()  # what a failing conversion does to the generator
    assert not _prefetch_threads()
    # One batch consumed, at most the queue's worth waiting, and one in the producer's hands.
    assert len(produced) <= 1 + _PREFETCH_BATCHES + 2


def test_a_fetch_past_its_timeout_is_a_query_timeout(tmp_path):
    path = tmp_path / "slow.duckdb"
    duckdb.connect(str(path)).close()
    engine = DuckDBBackend(name="slow", options={"path": str(path)})
    slow = (
        "SELECT CAST(a.range * b.range AS DOUBLE) AS x, CAST(a.range % 2 AS DOUBLE) AS y "
        "FROM range(100000) a, range(100000) b WHERE (a.range * b.range) % 7 = 3"
    )
    columns = SampleColumns(numeric=("x",), categorical=(), label="y", task="binary")
    with pytest.raises(QueryTimeout, match="stopped after 1 s"):
        engine.fetch(slow, columns=columns, chunk_rows=1000, timeout=1)
    assert not _prefetch_threads()
