"""Fixtures of the SDK's tests: contract-conforming models, a loopback config server, clients that get closed."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from mlab_client import ModelClient, contract
from mlab_client.tests.builders import build
from mlab_client.tests.config_server import ConfigServer


@pytest.fixture(scope="session")
def models():
    """Three artifacts: v1 logistic regression, v2 gradient-boosted trees, v3 another logistic regression."""
    return {1: build("lr"), 2: build("gbdt"), 3: build("lr", seed=1)}


@pytest.fixture
def server(models):
    server = ConfigServer()
    for version, built in models.items():
        server.add_version(version, built.onnx)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_client(server):
    """Build clients of the test server with fast retries; every one is closed at the end of the test."""
    clients = []

    def make(**options) -> ModelClient:
        options.setdefault("wait", 5)
        options.setdefault("retry_base", 0.05)
        options.setdefault("retry_cap", 0.2)
        options.setdefault("timeout", 2.0)
        token = options.pop("token", server.token)
        client = ModelClient(server.url, server.scene, token, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def redis_url(settings):
    """The test Redis (emptied before each test by the root conftest), as a URL the SDK's client can take."""
    return settings.REDIS_URL


def cache_artifact(connection, data: bytes, *, chunk_size: int = 4096) -> str:
    """Write ``data`` to Redis as the server does, chunked under the contract's keys; returns its sha256."""
    sha256 = hashlib.sha256(data).hexdigest()
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    connection.set(
        contract.artifact_meta_key(sha256),
        json.dumps({"size": len(data), "chunk_size": chunk_size, "chunks": len(chunks)}),
    )
    for index, chunk in enumerate(chunks):
        connection.set(contract.artifact_chunk_key(sha256, index), chunk)
    return sha256


def wait_until(predicate, timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass (for effects of the listener thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
