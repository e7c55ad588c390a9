"""ModelClient's public surface against the loopback config server: start, predict, route, count, close."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlab_client import FeatureError, MlabClientError, ModelClient, NotReadyError, Prediction, bucket_of
from mlab_client.tests.builders import reference_scores

ROW = {"age": 31.0, "price": 12.5, "clicks_7d": 4.0, "city": "shanghai", "device": "ios"}


def test_predict_serves_the_version_a_unit_is_routed_to(server, make_client, models):
    server.publish({1: 50, 2: 50})
    with make_client() as client:
        assert client.status == "live" and client.revision == 1 and client.versions == [1, 2]
        rows = models[1].rows[:200]
        for index, row in enumerate(rows):
            unit = f"user-{index}"
            prediction = client.predict(row, unit_id=unit)
            assert isinstance(prediction, Prediction) and prediction.revision == 1
            assert prediction.version == client.version_for(unit)
            expected = reference_scores(models[prediction.version], models[1].matrix[index : index + 1])[0]
            assert prediction.score == pytest.approx(expected, abs=1e-5)
            assert prediction.label == int(prediction.score >= 0.5)
        assert {client.predict(ROW, unit_id=f"u{i}").version for i in range(100)} == {1, 2}


def test_overrides_pin_units_to_a_version(server, make_client):
    server.publish({1: 100}, overrides={"vip-1": 2, "vip-2": 3})
    with make_client() as client:
        assert client.versions == [1, 2, 3]
        assert client.predict(ROW, unit_id="vip-1").version == 2
        assert client.predict(ROW, unit_id="vip-2").version == 3
        assert client.predict(ROW, unit_id="someone").version == 1


def test_without_a_unit_id_each_call_draws_a_random_bucket(server, make_client):
    server.publish({1: 90, 2: 10})
    with make_client() as client:
        served = [client.predict(ROW).version for _ in range(4000)]
    share = served.count(2) / len(served)
    assert 0.07 < share < 0.13  # 10 % ± 3 points: a binomial with n=4000 strays by > 3 points ~1e-5 of the time


def test_predict_many_keeps_row_order_and_counts_per_version(server, make_client, models):
    server.publish({1: 50, 2: 50})
    with make_client() as client:
        rows = models[1].rows[:300]
        units = [f"user-{i}" for i in range(300)]
        batch = client.predict_many(rows, unit_ids=units)
        singles = [client.predict(row, unit_id=unit) for row, unit in zip(rows, units, strict=True)]
        assert [p.version for p in batch] == [p.version for p in singles]
        assert [p.score for p in batch] == pytest.approx([p.score for p in singles], abs=1e-6)
        counted = client.counters.predictions
        assert sum(counted.values()) == 600
        assert counted[1] == 2 * sum(1 for p in batch if p.version == 1)
        assert len(client.predict_many(rows[:50])) == 50
        assert client.predict_many([]) == []


def test_predict_many_names_the_row_at_fault_and_counts_nothing(server, make_client, models):
    server.publish({1: 50, 2: 50})
    with make_client() as client:
        rows = [ROW] * 10 + [{"age": 1.0}] + [ROW] * 5
        with pytest.raises(FeatureError) as caught:
            client.predict_many(rows, unit_ids=[f"u{i}" for i in range(16)])
        assert caught.value.row == 10 and "device" in caught.value.missing
        assert client.counters.predictions == {}
        with pytest.raises(ValueError, match="unit_ids has 2 items for 3 rows"):
            client.predict_many([ROW] * 3, unit_ids=["a", "b"])


def test_feature_errors_reach_the_caller_unchanged(server, make_client):
    server.publish({1: 100})
    with make_client() as client:
        with pytest.raises(FeatureError, match="unknown features: colour"):
            client.predict(dict(ROW, colour="red"), unit_id="u1")
        assert client.counters.predictions == {}


def test_before_any_model_is_loaded_predict_says_why(make_client):
    client = make_client()
    with pytest.raises(NotReadyError, match="start"):
        client.predict(ROW)
    client.start()  # nothing published: the server answers 404
    assert client.status == "starting"
    with pytest.raises(NotReadyError, match="HTTP 404"):
        client.predict(ROW)
    with pytest.raises(NotReadyError):
        client.version_for("u1")


def test_a_refused_token_is_reported_and_counted(server, make_client):
    server.publish({1: 100})
    client = make_client(token="wrong").start()
    assert client.status == "starting"
    assert client.counters.refresh_failures >= 1
    assert "HTTP 401" in client.counters.last_error and "token was refused" in client.counters.last_error
    assert "wrong" not in repr(client) and "wrong" not in client.counters.last_error


@pytest.mark.parametrize("send_length", [True, False], ids=["content-length", "read-until-close"])
def test_an_oversized_config_is_refused_unread_counted_and_the_good_one_kept(server, make_client, send_length):
    server.publish({1: 100})
    client = make_client(max_config_bytes=64 * 1024).start()
    assert client.revision == 1
    server.send_length = send_length
    huge = dict(server.config, revision=2, padding="x" * (1024 * 1024))
    server.publish_raw(huge)
    deadline = time.monotonic() + 5
    while client.counters.configs_refused == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    counters = client.counters
    assert counters.configs_refused >= 1 and "larger than the 65,536 bytes" in counters.last_error
    assert client.revision == 1 and client.predict(ROW, unit_id="a").version == 1


def test_the_config_cap_is_checked():
    with pytest.raises(ValueError, match="max_config_bytes"):
        ModelClient("http://localhost", "s", "t", max_config_bytes=10)


def test_counters_and_on_change(server, make_client):
    server.publish({1: 100})
    changes = []
    client = make_client()
    client.on_change(changes.append)
    with client:
        before = time.time()
        client.predict(ROW, unit_id="a")
        revision = server.publish({1: 50, 2: 50})
        assert client.wait_for_revision(revision, timeout=5)
        client.predict(ROW, unit_id="a")
        counters = client.counters
    assert [(c.previous_revision, c.revision, c.versions, c.source) for c in changes] == [
        (None, 1, (1,), "live"),
        (1, 2, (1, 2), "live"),
    ]
    assert sum(counters.predictions.values()) == 2 and counters.refresh_failures == 0
    assert counters.swaps == 2 and counters.fetches == {"http": 2}
    assert counters.last_refresh is not None and counters.last_refresh >= before - 1
    assert client.status == "closed"


def test_a_failing_callback_does_not_stop_the_client(server, make_client):
    server.publish({1: 100})
    client = make_client()

    @client.on_change
    def explode(change):
        raise RuntimeError("boom")

    with client:
        assert client.wait_for_revision(server.publish({2: 100}), timeout=5)
        assert client.predict(ROW, unit_id="x").version == 2


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="wait"):
        ModelClient("http://127.0.0.1:1", "scene", "t", wait=61)
    with pytest.raises(ValueError, match="scene"):
        ModelClient("http://127.0.0.1:1", "", "t")
    with pytest.raises(ValueError, match="base_url"):
        ModelClient("mlab:8000", "scene", "t")
    with pytest.raises(ValueError, match="retry_base"):
        ModelClient("http://127.0.0.1:1", "scene", "t", retry_base=5, retry_cap=1)
    with pytest.raises(ValueError, match="threads"):
        ModelClient("http://127.0.0.1:1", "scene", "t", threads=0)
    with pytest.raises(ValueError, match="cannot name a snapshot directory"):
        ModelClient("http://127.0.0.1:1", "../etc", "t", snapshot_dir="/tmp")


def test_a_closed_client_cannot_restart_but_keeps_its_models(server, make_client):
    server.publish({1: 100})
    client = make_client().start()
    client.close()
    client.close()
    assert client.predict(ROW, unit_id="u").version == 1
    with pytest.raises(MlabClientError, match="closed"):
        client.start()


def test_routing_is_the_documented_bucketing(server, make_client):
    server.publish({1: 30, 2: 70})
    with make_client() as client:
        for i in range(500):
            unit = f"user-{i}"
            assert client.version_for(unit) == (1 if bucket_of(unit, server.salt) < 3000 else 2)


def test_the_sdk_never_imports_django():
    code = "import sys, mlab_client; assert not [m for m in sys.modules if m.split('.')[0] == 'django'], 'django'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
