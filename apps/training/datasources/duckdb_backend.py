"""DuckDB: a read-only connection to a database file, results streamed as Arrow record batches.

The file is the source's, and so is every view in it: a view may call read_csv('/etc/passwd'), ATTACH another
file, INSTALL an extension or read a session variable. So the file must lie under MLAB_DUCKDB_ROOTS (checked
on the resolved path, which is the one opened), and the connection is opened with external access disabled
(no file, network or extension access beyond the database file itself), extension auto-install and auto-load
off, and its configuration locked, so that no statement, ours or a view's, can turn any of that back on.
"""

from __future__ import annotations

import queue
import threading
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .base import ACCESS_TOKEN_VARIABLE, Backend, Schema, access_token_digest, allowed_schema
from .errors import DataSourceUnavailable, QueryFailed, QueryTimeout
from .policy import duckdb_path_allowed
from .sample_data import SampleBuilder, SampleColumns, SampleData

# pyarrow's default allocator (mimalloc) holds on to freed pages; the system allocator returns large blocks
# at once, so the temporary arrays of one chunk do not add up over a long fetch.
_POOL = pa.system_memory_pool()

# Fixed when the connection opens; lock_configuration makes every later SET of a setting an error.
HARDENED_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}


class DuckDBBackend(Backend):
    dialect = "duckdb"

    @property
    def path(self) -> Path:
        """The file to open: symlinks and ``..`` resolved, under MLAB_DUCKDB_ROOTS (SourceRefused otherwise)."""
        path = self.options.get("path")
        if not path:
            raise DataSourceUnavailable(f"Data source {self.name!r} has no path option (the DuckDB file).")
        return duckdb_path_allowed(path, source=self.name)

    @contextmanager
    def connect(self):
        """A read-only, hardened connection to the source's file."""
        path = self.path
        if not path.is_file():
            raise DataSourceUnavailable(
                f"Data source {self.name!r}: the DuckDB file {self.options['path']} does not exist."
            )
        # Settings are global to DuckDB's instance of a file, which every connection to it in this process
        # shares, and locked: they are all given here, the same for every connection (DuckDB refuses a second
        # connection to a file with a different configuration). A sample query is scans and small hash joins,
        # and Python consumes the stream more slowly than one thread produces it: more threads would only
        # buffer batches ahead (measured: 35 MB vs 22 MB at a million rows, same time), and one thread gives
        # a deterministic row order. The "threads" option overrides it.
        config: dict[str, str | bool | int | float | list[str]] = {
            **HARDENED_CONFIG,
            "threads": int(self.options.get("threads", 1)),
        }
        try:
            con = duckdb.connect(str(path), read_only=True, config=config)
        except duckdb.Error as exc:
            raise DataSourceUnavailable(f"Data source {self.name!r}: cannot open {path}: {exc}") from None
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def _deadline(self, con, timeout: int):
        """DuckDB has no statement timeout: interrupt the connection from a timer."""
        fired = threading.Event()

        def stop():
            fired.set()
            con.interrupt()

        timer = threading.Timer(timeout, stop)
        timer.daemon = True
        timer.start()
        try:
            yield
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            # An interrupted Arrow stream raises pyarrow's OSError rather than duckdb's InterruptException.
            if fired.is_set() or isinstance(exc, duckdb.InterruptException):
                raise QueryTimeout(timeout) from None
            raise QueryFailed(f"Data source {self.name!r} refused the query: {exc}") from None
        finally:
            timer.cancel()

    def introspect(self) -> Schema:
        schema_name = self.options.get("schema", "main")
        with self.connect() as con:
            rows = con.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = ? ORDER BY table_name, ordinal_position",
                [schema_name],
            ).fetchall()
        return allowed_schema(rows)

    @staticmethod
    def _session(con, access_token: str | None) -> None:
        if access_token is not None:
            con.execute(f"SET VARIABLE {ACCESS_TOKEN_VARIABLE} = ?", [access_token_digest(access_token)])

    def count(self, sql: str, *, timeout: int, access_token: str | None = None) -> int:
        with self.connect() as con, self._deadline(con, timeout):
            self._session(con, access_token)
            return int(con.execute(sql).fetchone()[0])

    def fetch_one(self, sql: str, *, timeout: int) -> tuple:
        with self.connect() as con, self._deadline(con, timeout):
            row = con.execute(sql).fetchone()
        return tuple(row) if row is not None else ()

    def fetch(
        self, sql: str, *, columns: SampleColumns, chunk_rows: int, timeout: int, access_token: str | None = None
    ) -> SampleData:
        builder = SampleBuilder(columns)
        names, numeric = columns.names, set(columns.numeric)
        with self.connect() as con, self._deadline(con, timeout):
            self._session(con, access_token)
            for batch in _prefetched(con.sql(sql).to_arrow_reader(chunk_rows)):
                if batch.num_rows == 0:
                    continue
                for name, column in zip(names, batch.columns, strict=True):
                    if name == columns.label:
                        builder.add_label(_to_float(column))
                    elif name in numeric:
                        builder.add_numeric(name, _to_float(column))
                    else:
                        encoded = pc.dictionary_encode(column, memory_pool=_POOL)
                        vocabulary = encoded.dictionary.to_pylist()
                        null_code = pa.scalar(len(vocabulary), type=encoded.indices.type)
                        codes = pc.coalesce(encoded.indices, null_code, memory_pool=_POOL).to_numpy(
                            zero_copy_only=False
                        )
                        builder.add_categorical_codes(name, vocabulary, codes)
        return builder.finish({"source": self.name, "dialect": self.dialect})


_PREFETCH_BATCHES = 2
_DONE = object()


def _prefetched(reader: pa.RecordBatchReader):
    """The reader's batches, produced by a thread of their own while the caller converts the previous ones.

    DuckDB releases the GIL while it computes a batch, so with its single thread (kept for a deterministic row
    order) the query and the conversion overlap instead of taking turns. At most ``_PREFETCH_BATCHES`` wait in
    the queue, so memory stays bounded. An error in the producer (an interrupt on timeout, a failing query)
    is raised here, in the caller; when the caller stops early, the producer is stopped and joined before the
    connection can be closed under it.
    """
    batches: queue.Queue = queue.Queue(maxsize=_PREFETCH_BATCHES)
    stop = threading.Event()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            for batch in reader:
                while not stop.is_set():
                    try:
                        batches.put(batch, timeout=0.05)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)
        finally:
            batches.put(_DONE)  # the caller drains until it sees this, so there is always room eventually

    producer = threading.Thread(target=produce, name="duckdb-prefetch", daemon=True)
    producer.start()
    try:
        while (batch := batches.get()) is not _DONE:
            yield batch
        if failure:
            raise failure[0]
    finally:
        stop.set()
        while producer.is_alive():  # drain so that a producer blocked on a full queue can finish
            try:
                batches.get(timeout=0.05)
            except queue.Empty:
                pass
        producer.join()


def _to_float(column: pa.Array) -> np.ndarray:
    if not pa.types.is_floating(column.type):
        column = pc.cast(column, pa.float64(), memory_pool=_POOL)
    values = column.to_numpy(zero_copy_only=False)
    return values.astype(np.float64, copy=False)
