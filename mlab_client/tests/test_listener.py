"""The listener thread against the loopback config server: swaps, partial fetches, failures, shutdown."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from mlab_client.tests.builders import reference_scores
from mlab_client.tests.config_server import ConfigServer
from mlab_client.tests.conftest import wait_until

ROW = {"age": 31.0, "price": 12.5, "clicks_7d": 4.0, "city": "shanghai", "device": "ios"}


def test_a_new_revision_is_swapped_in_while_the_poll_is_held(server, make_client, models):
    server.publish({1: 100})
    with make_client(wait=30) as client:
        assert client.predict(ROW, unit_id="u1").version == 1
        assert wait_until(lambda: server.config_requests >= 2)  # the listener is now held by the server
        revision = server.publish({2: 100})
        assert client.wait_for_revision(revision, timeout=2)
        prediction = client.predict(ROW, unit_id="u1")
        assert (prediction.version, prediction.revision) == (2, revision)
        expected = reference_scores(models[2], models[2].matrix[:1])[0]
        assert client.predict(models[2].rows[0], unit_id="u1").score == pytest.approx(expected, abs=1e-5)


def test_only_the_versions_it_lacks_are_fetched(server, make_client):
    server.publish({1: 90, 2: 10})
    with make_client() as client:
        assert dict(server.artifact_requests) == {1: 1, 2: 1}
        assert client.wait_for_revision(server.publish({1: 50, 2: 50}), timeout=5)
        assert dict(server.artifact_requests) == {1: 1, 2: 1}
        assert client.wait_for_revision(server.publish({1: 40, 2: 40, 3: 20}), timeout=5)
        assert dict(server.artifact_requests) == {1: 1, 2: 1, 3: 1}
        assert client.versions == [1, 2, 3]
        assert client.wait_for_revision(server.publish({3: 100}), timeout=5)
        assert client.versions == [3]
        assert client.wait_for_revision(server.publish({1: 100}), timeout=5)  # dropped earlier: fetched again
        assert dict(server.artifact_requests) == {1: 2, 2: 1, 3: 1}


def test_a_tampered_artifact_is_rejected_counted_and_the_old_model_kept(server, make_client):
    server.publish({1: 100})
    with make_client() as client:
        server.tampered.add(2)
        bad = server.publish({1: 50, 2: 50})
        assert wait_until(lambda: client.counters.refresh_failures >= 1)  # counted after the rejection
        counters = client.counters
        assert counters.artifact_rejections >= 1 and "sha256 mismatch" in counters.last_error
        assert client.revision == 1 and client.versions == [1]
        assert all(client.predict(ROW, unit_id=f"u{i}").version == 1 for i in range(50))
        server.tampered.clear()  # the server heals: the retry succeeds
        assert client.wait_for_revision(bad, timeout=5)
        assert client.versions == [1, 2]


def test_server_down_keeps_predicting_then_catches_up(server, make_client):
    server.publish({1: 100})
    with make_client() as client:
        assert wait_until(lambda: server.config_requests >= 2)
        server.stop()
        assert wait_until(lambda: client.counters.refresh_failures >= 2)
        served = [client.predict(ROW, unit_id=f"u{i}") for i in range(200)]
        assert {(p.version, p.revision) for p in served} == {(1, 1)}
        assert client.status == "live"
        revision = server.publish({2: 100})  # published while the client cannot see it
        server.start()
        assert client.wait_for_revision(revision, timeout=5)
        assert client.predict(ROW, unit_id="u1").version == 2


def test_server_errors_back_off_and_keep_the_last_good_models(server, make_client):
    server.publish({1: 100})
    with make_client(retry_base=0.2, retry_cap=0.4) as client:
        server.fail = True
        server.publish({2: 100})
        time.sleep(1.5)
        failures = client.counters.refresh_failures
        # Backing off 0.1–0.4 s between tries: a handful of failures in 1.5 s, not a busy loop of hundreds.
        assert 2 <= failures <= 20
        assert "HTTP 503" in client.counters.last_error
        assert client.predict(ROW, unit_id="u").version == 1
        server.fail = False
        assert client.wait_for_revision(2, timeout=5)


def test_a_config_breaking_the_contract_is_refused_and_named(server, make_client):
    server.publish({1: 100})
    with make_client() as client:
        broken = dict(server.config, revision=2, allocation=[[0, 5000, 1]])
        server.publish_raw(broken)
        assert wait_until(lambda: client.counters.refresh_failures >= 1)
        assert "config allocation" in client.counters.last_error and "unallocated" in client.counters.last_error
        assert client.revision == 1
        server.publish_raw(dict(server.config, revision=2, versions=[dict(server.config["versions"][0], sha256="xyz")]))
        assert wait_until(lambda: "versions[0].sha256" in (client.counters.last_error or ""))
        assert client.revision == 1


def test_an_older_revision_is_never_swapped_in(server, make_client):
    server.publish({1: 100})
    server.publish({2: 100})
    with make_client() as client:
        assert client.revision == 2
        server.publish_raw(dict(server.config, revision=1, allocation=[[0, 10000, 2]]))
        assert wait_until(lambda: "older than 2" in (client.counters.last_error or ""))
        assert client.revision == 2


def test_close_returns_within_a_second_while_the_server_holds_the_poll(server, make_client):
    server.publish({1: 100})
    client = make_client(wait=60).start()
    assert wait_until(lambda: server.config_requests >= 2)
    time.sleep(0.2)  # the listener is inside the held request now
    began = time.monotonic()
    client.close()
    assert time.monotonic() - began < 1.0
    listener = [t for t in threading.enumerate() if t.name == f"mlab-client:{server.scene}"]
    assert all(not t.is_alive() for t in listener)
    assert client.status == "closed"
    revision = server.publish({2: 100})
    time.sleep(0.3)
    assert client.revision == 1 < revision  # a closed client follows nothing


def test_close_returns_within_a_second_while_retrying(server, make_client):
    server.publish({1: 100})
    client = make_client(retry_base=20.0, retry_cap=20.0).start()
    server.fail = True
    server.publish({2: 100})
    assert wait_until(lambda: client.counters.refresh_failures >= 1)  # now sleeping 10–20 s before the retry
    began = time.monotonic()
    client.close()
    assert time.monotonic() - began < 1.0


def test_a_server_that_does_not_hold_polls_is_polled_at_a_gentle_pace(server, make_client):
    server.publish({1: 100})
    with make_client(wait=0):
        time.sleep(1.5)
    assert server.config_requests <= 4


def test_a_server_that_ignores_the_etag_is_polled_at_a_gentle_pace(server, make_client):
    server.publish({1: 100})
    server.honour_etag = False  # every poll gets the same revision again, at once
    with make_client() as client:
        time.sleep(1.5)
        assert client.revision == 1 and client.counters.refresh_failures == 0
    assert server.config_requests <= 4


def test_an_artifact_url_on_another_host_is_refused_and_gets_no_token(server, make_client, models):
    elsewhere = ConfigServer(scene=server.scene, token=server.token)
    elsewhere.add_version(2, models[2].onnx)
    elsewhere.start()
    try:
        server.publish({1: 100})
        with make_client() as client:
            foreign = dict(server.config["versions"][0], version=2, sha256=hashlib.sha256(models[2].onnx).hexdigest())
            foreign["size"] = len(models[2].onnx)
            foreign["url"] = f"{elsewhere.url}/api/v1/scenes/{server.scene}/versions/2/artifact/"
            server.publish_raw(dict(server.config, revision=2, allocation=[[0, 10000, 2]], versions=[foreign]))
            assert wait_until(lambda: "is not on" in (client.counters.last_error or ""))
            assert client.revision == 1 and elsewhere.artifact_requests == {}
    finally:
        elsewhere.stop()
