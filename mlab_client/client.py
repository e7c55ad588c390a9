"""``ModelClient``: follows a scene's published config, hot-swaps its models, routes units and predicts."""

from __future__ import annotations

import logging
import math
import numbers
import random
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from . import contract
from .config import SceneConfig, VersionInfo
from .contract import BUCKETS, MAX_WAIT_SECONDS
from .errors import ArtifactError, ConfigTooLarge, FeatureError, MlabClientError, NotReadyError, RefreshError
from .events import EventCounters, EventRecorder, EventSink
from .model import Model, release_freed_memory
from .routing import Router
from .transport import MAX_CONFIG_BYTES, HttpEvents, HttpTransport, RedisArtifacts, RedisEventStream

if TYPE_CHECKING:
    from .snapshot import SnapshotStore

logger = logging.getLogger("mlab_client")

LIVE = "live"
SNAPSHOT = "snapshot"
STARTING = "starting"
CLOSED = "closed"

_QUICK_POLL_SECONDS = 1.0  # a 304 faster than this means the server did not hold the request: pace the loop
_JOIN_SECONDS = 0.8
_CLOSE_FLUSH_SECONDS = 0.85  # close() sends what is left until then, then interrupts the send (50 ms more at most)
_METRIC = re.compile(contract.METRIC_PATTERN)


class Prediction(NamedTuple):
    """One prediction: the version that served it, its score (probability of class 1 for a binary model,
    the predicted value for regression), the label (binary: score ≥ threshold; regression: None) and the
    config revision whose routing chose the version."""

    version: int
    score: float
    label: int | None
    revision: int


@dataclass(frozen=True)
class Change:
    """Passed to ``on_change`` callbacks after the client swapped to another revision."""

    previous_revision: int | None
    revision: int
    versions: tuple[int, ...]
    source: str


@dataclass(frozen=True)
class Counters:
    """A consistent copy of the client's counters.

    ``predictions``: rows served per version; ``refresh_failures``: failed polls or refreshes (the last good
    models stayed in service); ``last_refresh``: ``time.time()`` of the last successful answer from the
    server (None if never); ``last_error``: the last failure, in words; ``swaps``: routing tables swapped in;
    ``fetches``: artifacts read per source (``snapshot``, ``redis``, ``http``); ``artifact_rejections``:
    artifacts refused for a size or sha256 mismatch; ``redis_fallbacks``: artifacts Redis could not give;
    ``configs_refused``: configs refused unread for exceeding ``max_config_bytes``; ``events``: exposures
    and outcomes recorded, sent, buffered and dropped (see ``EventCounters``).
    """

    predictions: dict[int, int]
    refresh_failures: int
    last_refresh: float | None
    last_error: str | None
    swaps: int
    fetches: dict[str, int]
    artifact_rejections: int
    redis_fallbacks: int
    snapshot_failures: int
    configs_refused: int = 0
    events: EventCounters = field(default_factory=EventCounters)


@dataclass(frozen=True)
class _Routing:
    """Everything one revision needs to predict. Immutable, swapped in whole by one assignment."""

    config: SceneConfig
    etag: str | None
    router: Router
    models: Mapping[int, Model]
    source: str


@dataclass
class _Tallies:
    served: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))
    refresh_failures: int = 0
    last_refresh: float | None = None
    last_error: str | None = None
    swaps: int = 0
    fetches: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    artifact_rejections: int = 0
    redis_fallbacks: int = 0
    snapshot_failures: int = 0
    configs_refused: int = 0


class ModelClient:
    """A live, A/B-routed view of one Mlab scene's models.

    ``start()`` loads the scene's current config and models (or, when the server cannot be reached, the
    snapshot in ``snapshot_dir``) and starts a daemon thread that long-polls the config (``wait`` seconds per
    request, at most 60). On a new revision the thread fetches the versions it lacks (from the snapshot
    files, from Redis when ``redis_url`` is given, else over HTTP), checks their sha256, loads them and swaps
    the routing table in one assignment. Failures keep the last good models and are counted; retries back
    off exponentially with jitter between ``retry_base`` and ``retry_cap`` seconds.

    ``predict`` routes ``unit_id`` to a version exactly as the server does (same unit, same version, in every
    process); without a unit id each call draws a random bucket. ``close()`` stops following within a second;
    the loaded models stay usable. The token is sent only in the Authorization header, never logged.

    With ``record_events`` (the default) each ``predict`` with a unit id records an exposure, and
    ``record_outcome`` an outcome: they go into a buffer of at most ``event_buffer`` events (the oldest
    dropped and counted when it is full) that a daemon thread sends every ``event_interval`` seconds in
    batches of at most ``event_batch`` events, to the scene's events endpoint, or into the scene's Redis
    stream when ``redis_url`` is given. Only the first exposure of a unit per revision and UTC day is sent
    (later ones are counted); ``dedup_units`` bounds how many units are remembered for that, in each of two
    generations. A failed send is retried with the same backoff as the config, under the same batch id.
    """

    def __init__(
        self,
        base_url: str,
        scene: str,
        token: str,
        snapshot_dir: str | None = None,
        redis_url: str | None = None,
        wait: int = 30,
        *,
        timeout: float = 5.0,
        retry_base: float = 0.5,
        retry_cap: float = 30.0,
        threads: int = 1,
        record_events: bool = True,
        event_buffer: int = 100_000,
        event_batch: int = 500,
        event_interval: float = 1.0,
        dedup_units: int = 100_000,
        max_config_bytes: int = MAX_CONFIG_BYTES,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http:// or https:// URL")
        if not isinstance(scene, str) or not scene:
            raise ValueError("scene must be a non-empty string")
        if type(wait) is not int or not 0 <= wait <= MAX_WAIT_SECONDS:
            raise ValueError(f"wait must be an integer number of seconds between 0 and {MAX_WAIT_SECONDS}")
        if not 0 < retry_base <= retry_cap:
            raise ValueError("retry_base must be positive and at most retry_cap")
        if not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds")
        if type(threads) is not int or threads < 1:
            raise ValueError("threads must be a positive integer")
        for name, number in (
            ("event_buffer", event_buffer),
            ("event_batch", event_batch),
            ("dedup_units", dedup_units),
        ):
            if type(number) is not int or number < 1:
                raise ValueError(f"{name} must be a positive integer")
        if type(max_config_bytes) is not int or max_config_bytes < 1024:
            raise ValueError("max_config_bytes must be an integer of at least 1024")
        if not event_interval > 0:
            raise ValueError("event_interval must be a positive number of seconds")
        self.scene = scene
        self._wait = wait
        self._retry = (retry_base, retry_cap)
        self._threads = threads
        self._http = HttpTransport(base_url, token, timeout=timeout, max_config_bytes=max_config_bytes)
        self._redis = RedisArtifacts(redis_url, timeout=timeout) if redis_url else None
        self._snapshot: SnapshotStore | None = None
        if snapshot_dir:
            # imported only when used: its file handling (tempfile, shutil, pathlib) costs a service about
            # 1 MiB of memory that a client without a snapshot directory never needs
            from .snapshot import SnapshotStore

            self._snapshot = SnapshotStore(snapshot_dir, scene)
        self._state: _Routing | None = None
        self._saved_etag: str | None = None
        self._tallies = _Tallies()
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._announced: int | None = None  # the revision whose swap and callbacks are complete
        self._callbacks: list[Callable[[Change], Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._recorder: EventRecorder | None = None
        if record_events:
            sink: EventSink
            if redis_url:
                sink = RedisEventStream(redis_url, scene, timeout=timeout)
            else:  # a session of its own: close() interrupts the config's before the last flush is done
                sink = HttpEvents(HttpTransport(base_url, token, timeout=timeout), scene)
            self._recorder = EventRecorder(
                sink,
                name=scene,
                capacity=event_buffer,
                batch_size=event_batch,
                interval=event_interval,
                dedup_units=dedup_units,
                timeout=timeout,
                retry_base=retry_base,
                retry_cap=retry_cap,
            )

    def __repr__(self) -> str:
        return f"<ModelClient {self.scene!r} at {self._http.base_url} status={self.status} revision={self.revision}>"

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> ModelClient:
        """Load the current models (server first, snapshot when the server fails) and start following."""
        if self._closed:
            raise MlabClientError("a closed ModelClient cannot be started again")
        if self._thread is not None:
            return self
        try:
            self._poll(wait=0)
        except Exception as exc:
            self._record_failure(exc)
            self._load_snapshot()
        release_freed_memory()
        self._thread = threading.Thread(target=self._listen, name=f"mlab-client:{self.scene}", daemon=True)
        self._thread.start()
        if self._recorder is not None:
            self._recorder.start()
        return self

    def close(self) -> None:
        """Stop following the scene and send the events still buffered; returns within a second (events
        still unsent then are counted as dropped, ``closed``). Loaded models stay usable by ``predict``, but
        record nothing more."""
        if self._closed:
            return
        began = time.monotonic()
        self._closed = True
        self._stop.set()
        self._http.interrupt()
        if self._recorder is not None:  # the last flush runs while the listener winds down
            self._recorder.begin_close(began + _CLOSE_FLUSH_SECONDS)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=_JOIN_SECONDS)
        if self._recorder is not None:
            self._recorder.finish_close(began + _CLOSE_FLUSH_SECONDS)
        if self._redis is not None:
            self._redis.close()
        with self._changed:
            self._changed.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Send the events recorded so far; True once every one of them was sent (or dropped, as
        ``counters.events`` says), False if ``timeout`` seconds passed first (they stay buffered and are
        retried). True at once when recording is off."""
        if self._recorder is None:
            return True
        if self._closed:
            return self._recorder.counters.buffered == 0
        return self._recorder.flush(timeout)

    def __enter__(self) -> ModelClient:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- predicting --------------------------------------------------------------------------------------------

    def predict(self, features: Mapping[str, Any], unit_id: object = None) -> Prediction:
        """Score one row of raw features with the version ``unit_id`` is routed to.

        Raises ``FeatureError`` naming missing, unknown or unusable features, ``NotReadyError`` before any
        model is loaded."""
        state = self._state
        if state is None:
            raise self._not_ready()
        if unit_id is None:
            version = state.router.version_of_bucket(random.randrange(BUCKETS))
        else:
            version = state.router.version_for(unit_id)
        score, label = state.models[version].predict(features)
        with self._lock:
            self._tallies.served[version] += 1
        if unit_id is not None and self._recorder is not None:
            self._recorder.exposure(unit_id, state.config.revision, version, score)
        return Prediction(version, score, label, state.config.revision)

    def predict_many(
        self, rows: Sequence[Mapping[str, Any]], unit_ids: Sequence[object] | None = None
    ) -> list[Prediction]:
        """Score many rows, one session run per version; results are in the order of ``rows``.

        ``unit_ids`` (same length as ``rows``) routes each row; without it each row draws a random bucket.
        A ``FeatureError`` names the index of the first row at fault; then nothing is counted."""
        state = self._state
        if state is None:
            raise self._not_ready()
        rows = list(rows)
        if unit_ids is None:
            versions = [state.router.version_of_bucket(random.randrange(BUCKETS)) for _ in rows]
        else:
            unit_ids = list(unit_ids)
            if len(unit_ids) != len(rows):
                raise ValueError(f"unit_ids has {len(unit_ids)} items for {len(rows)} rows")
            versions = [state.router.version_for(unit) for unit in unit_ids]
        groups: defaultdict[int, list[int]] = defaultdict(list)
        for index, version in enumerate(versions):
            groups[version].append(index)
        results: list[Prediction | None] = [None] * len(rows)
        revision = state.config.revision
        for version, indices in groups.items():
            try:
                scored = state.models[version].predict_rows([rows[i] for i in indices])
            except FeatureError as exc:
                row = indices[exc.row] if exc.row is not None else None
                raise FeatureError(missing=exc.missing, unknown=exc.unknown, invalid=exc.invalid, row=row) from None
            for index, (score, label) in zip(indices, scored, strict=True):
                results[index] = Prediction(version, score, label, revision)
        with self._lock:
            for version, indices in groups.items():
                self._tallies.served[version] += len(indices)
        if unit_ids is not None and self._recorder is not None:
            served = zip(unit_ids, results, strict=True)
            self._recorder.exposures(revision, ((unit, p.version, p.score) for unit, p in served if p is not None))
        return results  # type: ignore[return-value]  # every index was filled by its version's group

    def record_outcome(self, unit_id: object, value: float = 1.0, metric: str = contract.DEFAULT_METRIC) -> None:
        """Record an outcome of ``unit_id`` (a click, a conversion: ``value`` 1; an amount: its value) for the
        scene's A/B results. Every call is sent, with the revision and the version the unit is routed to now;
        the server attributes it to the unit's exposure. ``metric`` names what was measured (letters, digits,
        ``_.-``, at most 64). Raises ``ValueError`` for a missing unit id, a bad metric name or a value that is
        not a finite number; does nothing when recording is off or the client is closed."""
        if unit_id is None:
            raise ValueError("record_outcome needs the unit id the prediction was made for")
        unit = unit_id if unit_id.__class__ is str else f"{unit_id}"
        if not 1 <= len(unit) <= contract.MAX_UNIT_ID_LENGTH:
            raise ValueError(f"a unit id is 1 to {contract.MAX_UNIT_ID_LENGTH} characters")
        if not isinstance(metric, str) or not _METRIC.fullmatch(metric):
            raise ValueError(f"metric must match {contract.METRIC_PATTERN}, got {metric!r}")
        if not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"value must be a finite number, got {value!r}")
        recorder = self._recorder
        if recorder is None:
            return
        state = self._state
        revision = version = None
        if state is not None:
            revision = state.config.revision
            try:
                version = state.router.version_for(unit)
            except LookupError:
                version = None
        recorder.outcome(unit, revision, version, metric, float(value))

    def version_for(self, unit_id: object) -> int:
        """The version ``unit_id`` is routed to under the current revision (overrides first)."""
        state = self._state
        if state is None:
            raise self._not_ready()
        return state.router.version_for(unit_id)

    def model(self, version: int) -> Model:
        """The loaded model of ``version`` (its signature, task, session), under the current revision."""
        state = self._state
        if state is None:
            raise self._not_ready()
        try:
            return state.models[version]
        except KeyError:
            raise LookupError(f"version {version} is not served by revision {state.config.revision}") from None

    # -- what the client holds ---------------------------------------------------------------------------------

    @property
    def revision(self) -> int | None:
        """The config revision in service, or None before any was loaded."""
        state = self._state
        return state.config.revision if state is not None else None

    @property
    def versions(self) -> list[int]:
        """The versions the current revision routes to."""
        state = self._state
        return sorted(state.models) if state is not None else []

    @property
    def status(self) -> str:
        """Where the models in service came from: ``"live"`` (the server), ``"snapshot"`` (the local snapshot,
        the server not reached yet), ``"starting"`` (none loaded yet) or ``"closed"``."""
        if self._closed:
            return CLOSED
        state = self._state
        return state.source if state is not None else STARTING

    @property
    def counters(self) -> Counters:
        events = self._recorder.counters if self._recorder is not None else EventCounters()  # its own lock
        with self._lock:
            t = self._tallies
            return Counters(
                predictions=dict(t.served),
                refresh_failures=t.refresh_failures,
                last_refresh=t.last_refresh,
                last_error=t.last_error,
                swaps=t.swaps,
                fetches=dict(t.fetches),
                artifact_rejections=t.artifact_rejections,
                redis_fallbacks=t.redis_fallbacks,
                snapshot_failures=t.snapshot_failures,
                configs_refused=t.configs_refused,
                events=events,
            )

    def on_change(self, callback: Callable[[Change], Any]) -> Callable[[Change], Any]:
        """Call ``callback(change)`` after every swap to a new revision (from the listener thread; its
        exceptions are logged and ignored). Returns ``callback``, so it can be used as a decorator."""
        self._callbacks.append(callback)
        return callback

    def wait_for_revision(self, revision: int, timeout: float) -> bool:
        """Block until the client serves ``revision`` or a later one (and its ``on_change`` callbacks have
        run); False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._announced is None or self._announced < revision:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return False
                self._changed.wait(remaining)
        return True

    # -- following the scene -----------------------------------------------------------------------------------

    def _listen(self) -> None:
        failures = 0
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                changed = self._poll(wait=self._wait)
                failures = 0
            except Exception as exc:
                if self._stop.is_set():
                    break
                failures += 1
                self._record_failure(exc)
                self._stop.wait(self._backoff(failures))
                continue
            if changed:
                release_freed_memory()  # the parse garbage of new models and the sessions of dropped ones
            elif time.monotonic() - began < _QUICK_POLL_SECONDS:
                self._stop.wait(_QUICK_POLL_SECONDS - (time.monotonic() - began))

    def _backoff(self, failures: int) -> float:
        base, cap = self._retry
        delay = min(cap, base * 2 ** min(failures - 1, 30))
        return random.uniform(delay / 2, delay)

    def _poll(self, *, wait: int) -> bool:
        """One request to the config endpoint; True when it changed what the client serves."""
        state = self._state
        if state is None or state.source != LIVE:
            wait = 0  # the snapshot's revision may be current: confirm it now rather than after a held poll
        body, etag = self._http.get_config(self.scene, etag=state.etag if state else None, wait=wait)
        if body is None:
            self._record_contact()
            if state is not None and state.source != LIVE:
                self._swap(_Routing(state.config, state.etag, state.router, state.models, LIVE))
                return True
            return False
        self._apply(SceneConfig.parse(body, scene=self.scene), etag)
        self._record_contact()
        # The same revision again (a server that ignores If-None-Match) is no change: the loop paces itself.
        return state is None or state.source != LIVE or self.revision != state.config.revision

    def _apply(self, config: SceneConfig, etag: str | None) -> None:
        current = self._state
        if current is not None and config.revision < current.config.revision:
            raise RefreshError(f"the server sent revision {config.revision}, older than {current.config.revision}")
        models, fetched = self._load_models(config, current)
        if self._stop.is_set():
            return  # closed meanwhile: never swap after close() returned
        self._swap(_Routing(config, etag, Router(config.salt, config.allocation, config.overrides), models, LIVE))
        if self._snapshot is not None and etag != self._saved_etag:
            try:
                self._snapshot.save(config, etag, fetched)
                self._saved_etag = etag
            except Exception as exc:
                with self._lock:
                    self._tallies.snapshot_failures += 1
                logger.warning("mlab_client %s: could not write the snapshot: %s", self.scene, exc)

    def _load_models(self, config: SceneConfig, current: _Routing | None) -> tuple[dict[int, Model], dict[str, bytes]]:
        """Models for every version the config routes to, reusing loaded ones; returns the new bytes too."""
        loaded = {model.sha256: model for model in current.models.values()} if current is not None else {}
        models: dict[int, Model] = {}
        fetched: dict[str, bytes] = {}
        for version in config.used_versions:
            info = config.versions[version]
            model = loaded.get(info.sha256)
            if model is None:
                data, source = self._fetch(info)
                model = Model(data, threads=self._threads)
                if source != SNAPSHOT:
                    fetched[info.sha256] = data
                loaded[info.sha256] = model
            models[version] = model
        return models, fetched

    def _fetch(self, info: VersionInfo) -> tuple[bytes, str]:
        """The bytes of a version, verified: snapshot file, else Redis (if configured), else HTTP."""
        if self._snapshot is not None:
            data = self._snapshot.read_artifact(info.sha256, info.size)
            if data is not None:
                self._count_fetch(SNAPSHOT)
                return data, SNAPSHOT
        if self._redis is not None:
            data = None
            try:
                data = self._redis.get(info)
            except ArtifactError as exc:
                with self._lock:
                    self._tallies.artifact_rejections += 1
                logger.warning("mlab_client %s: %s; falling back to HTTP", self.scene, exc)
            except self._redis.errors as exc:
                logger.warning("mlab_client %s: Redis failed (%s); falling back to HTTP", self.scene, exc)
            if data is not None:
                self._count_fetch("redis")
                return data, "redis"
            with self._lock:
                self._tallies.redis_fallbacks += 1
        try:
            data = self._http.get_artifact(info)
        except ArtifactError:
            with self._lock:
                self._tallies.artifact_rejections += 1
            raise
        self._count_fetch("http")
        return data, "http"

    def _load_snapshot(self) -> None:
        if self._snapshot is None:
            return
        snapshot = self._snapshot.load()
        if snapshot is None:
            return
        try:
            models = {}
            for version in snapshot.config.used_versions:
                models[version] = Model(
                    snapshot.artifacts[snapshot.config.versions[version].sha256], threads=self._threads
                )
        except ArtifactError as exc:
            logger.warning("mlab_client %s: ignoring the snapshot: %s", self.scene, exc)
            return
        config = snapshot.config
        self._saved_etag = snapshot.etag
        self._swap(
            _Routing(config, snapshot.etag, Router(config.salt, config.allocation, config.overrides), models, SNAPSHOT)
        )
        logger.warning(
            "mlab_client %s: server unreachable, serving revision %s from the snapshot", self.scene, config.revision
        )

    def _swap(self, routing: _Routing) -> None:
        previous = self._state
        self._state = routing  # the one assignment every predict reads: old table or new, never a mix
        with self._lock:
            self._tallies.swaps += 1
        if previous is None or previous.config.revision != routing.config.revision:
            change = Change(
                previous.config.revision if previous is not None else None,
                routing.config.revision,
                tuple(sorted(routing.models)),
                routing.source,
            )
            for callback in list(self._callbacks):
                try:
                    callback(change)
                except Exception:
                    logger.exception("mlab_client %s: an on_change callback failed", self.scene)
        with self._changed:  # after the callbacks: wait_for_revision's callers see their effects
            self._announced = routing.config.revision
            self._changed.notify_all()

    # -- bookkeeping -------------------------------------------------------------------------------------------

    def _record_contact(self) -> None:
        with self._lock:
            self._tallies.last_refresh = time.time()

    def _record_failure(self, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._tallies.refresh_failures += 1
            self._tallies.configs_refused += isinstance(exc, ConfigTooLarge)
            self._tallies.last_error = message
        logger.warning("mlab_client %s: refresh failed, keeping revision %s: %s", self.scene, self.revision, message)

    def _count_fetch(self, source: str) -> None:
        with self._lock:
            self._tallies.fetches[source] += 1

    def _not_ready(self) -> NotReadyError:
        last = self.counters.last_error
        return NotReadyError(
            f"no model loaded for scene {self.scene!r} yet"
            + (f" (last error: {last})" if last else "; call start() or use the client as a context manager")
        )
