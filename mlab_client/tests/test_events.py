"""Exposures and outcomes sent to the loopback server's events endpoint: deduplication, the bounded buffer,
retries under the same batch id, 413 splits, 400 drops, flush and close within their budgets."""

from __future__ import annotations

import threading
import time

import pytest

from mlab_client import EventCounters, contract, events
from mlab_client.tests.conftest import wait_until

ROW = {"age": 31.0, "price": 12.5, "clicks_7d": 4.0, "city": "shanghai", "device": "ios"}


@pytest.fixture
def recording(make_client):
    """Clients that send events quickly (every 50 ms) unless told otherwise."""

    def make(**options):
        options.setdefault("event_interval", 0.05)
        return make_client(**options)

    return make


def balanced(counters: EventCounters) -> bool:
    return counters.exposures + counters.outcomes == counters.sent + counters.buffered + counters.dropped_total


def test_the_first_exposure_of_a_unit_per_revision_is_sent_and_later_ones_counted(server, recording):
    server.publish({1: 50, 2: 50})
    with recording() as client:
        served = {}
        for _ in range(5):
            for unit in ("u1", "u2", 7):
                served[str(unit)] = client.predict(ROW, unit_id=unit)
        client.predict(ROW)  # no unit: nothing to attribute, nothing recorded
        assert client.flush(5)
        counters = client.counters.events
    kept = server.kept_events()
    assert sorted(e["unit_id"] for e in kept) == ["7", "u1", "u2"]
    for event in kept:
        prediction = served[event["unit_id"]]
        assert event["type"] == "exposure" and event["revision"] == 1 and event["version"] == prediction.version
        assert event["score"] == pytest.approx(prediction.score, abs=1e-12)
        assert abs(event["ts"] - time.time()) < 60
        assert contract.event_errors(event) == {}
    assert (counters.exposures, counters.repeated_exposures, counters.sent, counters.buffered) == (3, 12, 3, 0)
    assert counters.batches >= 1 and counters.dropped == {} and balanced(counters)


def test_a_new_revision_sends_each_unit_again(server, recording):
    server.publish({1: 100})
    with recording() as client:
        for unit in ("a", "b"):
            client.predict(ROW, unit_id=unit)
        assert client.wait_for_revision(server.publish({1: 50, 2: 50}), timeout=5)
        for unit in ("a", "b", "a"):
            client.predict(ROW, unit_id=unit)
        assert client.flush(5)
        counters = client.counters.events
    assert sorted((e["revision"], e["unit_id"]) for e in server.kept_events()) == [
        (1, "a"),
        (1, "b"),
        (2, "a"),
        (2, "b"),
    ]
    assert counters.exposures == 4 and counters.repeated_exposures == 1


def test_a_new_utc_day_sends_each_unit_again(server, recording, monkeypatch):
    clock = [19_000 * 86_400 + 86_399.5]  # half a second before midnight UTC
    monkeypatch.setattr(events, "_now", lambda: clock[0])
    server.publish({1: 100})
    with recording() as client:
        client.predict(ROW, unit_id="a")
        client.predict(ROW, unit_id="a")
        clock[0] += 1.0
        client.predict(ROW, unit_id="a")
        client.predict(ROW, unit_id="a")
        assert client.flush(5)
    days = [contract.event_day(e["ts"]) for e in server.kept_events()]
    assert days == [19_000, 19_001]
    assert client.counters.events.repeated_exposures == 2


def test_remembered_units_are_bounded_by_two_generations(server, recording):
    server.publish({1: 100})
    with recording(dedup_units=3) as client:
        for unit in "abcde":  # a, b, c fill a generation and become the previous one; d, e start the next
            client.predict(ROW, unit_id=unit)
        client.predict(ROW, unit_id="a")  # still remembered: a repeat
        client.predict(ROW, unit_id="f")  # fills the new generation: a, b, c are forgotten
        client.predict(ROW, unit_id="a")  # sent again: a duplicate the server tolerates, never a miss
        assert client.flush(5)
        recorder = client._recorder
        assert len(recorder._seen) + len(recorder._seen_before) <= 2 * 3
    assert [e["unit_id"] for e in server.kept_events()] == ["a", "b", "c", "d", "e", "f", "a"]
    assert client.counters.events.repeated_exposures == 1


def test_predict_many_records_exposures_too(server, recording, models):
    server.publish({1: 50, 2: 50})
    with recording() as client:
        rows = models[1].rows[:40]
        units = [f"user-{i % 20}" for i in range(40)]
        batch = client.predict_many(rows, unit_ids=units)
        client.predict_many(rows)  # no unit ids: nothing recorded
        assert client.flush(5)
        counters = client.counters.events
    kept = {e["unit_id"]: e for e in server.kept_events()}
    assert sorted(kept) == sorted({*units})
    for unit, prediction in zip(units, batch, strict=True):
        assert kept[unit]["version"] == prediction.version
    assert counters.exposures == 20 and counters.repeated_exposures == 20


def test_outcomes_carry_the_units_routing_and_every_one_is_sent(server, recording):
    server.publish({1: 50, 2: 50})
    with recording() as client:
        client.record_outcome("user-1")
        client.record_outcome("user-1", value=3.5, metric="revenue")
        client.record_outcome(42, value=True, metric="click")
        assert client.flush(5)
        expected = {unit: client.version_for(unit) for unit in ("user-1", "42")}
    kept = server.kept_events()
    assert [(e["unit_id"], e["metric"], e["value"]) for e in kept] == [
        ("user-1", "conversion", 1.0),
        ("user-1", "revenue", 3.5),
        ("42", "click", 1.0),
    ]
    assert all(e["type"] == "outcome" and e["revision"] == 1 for e in kept)
    assert all(e["version"] == expected[e["unit_id"]] for e in kept)
    assert client.counters.events.outcomes == 3


def test_an_outcome_before_any_config_has_no_routing(server, recording):
    client = recording()  # nothing published: the client never loads a model
    client.record_outcome("early")
    assert client.flush(5)
    (event,) = server.kept_events()
    assert event["revision"] is None and event["version"] is None and contract.event_errors(event) == {}


@pytest.mark.parametrize(
    "arguments, message",
    [
        ((None,), "unit id"),
        (("u", float("nan")), "finite"),
        (("u", "1"), "finite"),
        (("u", 1.0, "has space"), "metric"),
        (("u", 1.0, ""), "metric"),
        (("x" * 257,), "unit id"),
    ],
)
def test_bad_outcomes_are_refused_at_the_call(recording, arguments, message):
    client = recording()
    with pytest.raises(ValueError, match=message):
        client.record_outcome(*arguments)
    assert client.counters.events.outcomes == 0


def test_a_full_buffer_drops_the_oldest_and_counts_them(server, recording):
    server.publish({1: 100})
    with recording(event_buffer=10, event_interval=60) as client:  # nothing is sent until the flush
        for i in range(25):
            client.predict(ROW, unit_id=f"u{i}")
        counters = client.counters.events
        assert counters.buffered == 10 and counters.dropped == {"overflow": 15} and balanced(counters)
        assert client.flush(5)
        counters = client.counters.events
    assert [e["unit_id"] for e in server.kept_events()] == [f"u{i}" for i in range(15, 25)]
    assert counters.sent == 10 and counters.buffered == 0 and balanced(counters)


def test_server_down_for_a_while_then_back(server, recording):
    server.publish({1: 50, 2: 50})
    with recording(event_buffer=200, event_batch=50) as client:
        for i in range(30):
            client.predict(ROW, unit_id=f"before-{i}")
        assert client.flush(5)
        server.stop()
        for i in range(300):
            client.predict(ROW, unit_id=f"during-{i}")
            client.record_outcome(f"during-{i}")
        assert wait_until(lambda: client.counters.events.retries >= 3, timeout=5)
        assert client.predict(ROW, unit_id="during-0").version in (1, 2)  # predicting goes on
        server.start()
        assert client.flush(10)
        counters = client.counters.events
    kept = server.kept_events()
    assert counters.sent == len(kept) == counters.exposures + counters.outcomes - counters.dropped_total
    assert counters.dropped["overflow"] >= 600 - 200 - 50  # all but the buffer and the batch being retried
    assert len({(e["type"], e["unit_id"]) for e in kept}) == len(kept)  # nothing counted twice
    assert counters.buffered == 0 and balanced(counters)


def test_a_retried_batch_keeps_its_id_and_its_events(server, recording):
    server.publish({1: 100})
    server.events_fail_next = 3
    with recording() as client:
        for i in range(5):
            client.record_outcome(f"u{i}")
        assert client.flush(5)
        counters = client.counters.events
    posts = server.event_posts
    assert [p.status for p in posts] == [503, 503, 503, 202]
    assert len({p.batch for p in posts}) == 1 and all(p.events == posts[0].events for p in posts)
    assert counters.retries == 3 and counters.sent == 5 and "HTTP 503" in counters.last_error


def test_a_batch_whose_answer_was_lost_is_counted_once(server, recording):
    server.publish({1: 100})
    server.events_lose_replies = 1
    with recording() as client:
        for i in range(5):
            client.record_outcome(f"u{i}")
        assert client.flush(5)
        counters = client.counters.events
    assert [p.status for p in server.event_posts] == [0, 202]
    assert server.event_posts[0].batch == server.event_posts[1].batch
    assert len(server.kept) == 1 and len(server.kept_events()) == counters.sent == 5


def test_a_batch_too_large_is_split_and_later_batches_are_smaller(server, recording):
    server.publish({1: 100})
    server.events_limit = 4
    with recording(event_batch=10, event_interval=60) as client:
        for i in range(10):
            client.record_outcome(f"a{i}")
        assert client.flush(5)
        refused = [p for p in server.event_posts if p.status == 413]
        assert refused and len(refused[0].events) == 10
        accepted = {p.batch for p in server.event_posts if p.status == 202}
        assert not accepted & {p.batch for p in refused}  # the halves go out under new ids
        assert [e["unit_id"] for e in server.kept_events()] == [f"a{i}" for i in range(10)]
        posts_before = len(server.event_posts)
        for i in range(10):
            client.record_outcome(f"b{i}")
        assert client.flush(5)
        counters = client.counters.events
    assert all(p.status == 202 and len(p.events) <= 4 for p in server.event_posts[posts_before:])
    assert counters.splits >= 1 and counters.sent == 20 and counters.dropped == {}


def test_an_event_refused_even_alone_is_dropped(server, recording):
    server.publish({1: 100})
    server.events_limit = 0
    with recording() as client:
        client.record_outcome("u")
        assert client.flush(5)
        assert client.counters.events.dropped == {"rejected": 1}


@pytest.mark.parametrize(
    "style, kept", [("index", ["good-1", "good-2"]), ("list", ["good-1", "good-2"]), ("batch", [])]
)
def test_refused_events_are_dropped_and_counted_never_resent(server, recording, style, kept):
    server.publish({1: 100})
    server.events_reject = lambda event: event["unit_id"].startswith("bad")
    server.events_reject_style = style
    with recording(event_interval=60) as client:
        for unit in ("good-1", "bad-1", "good-2"):
            client.record_outcome(unit)
        assert client.flush(5)
        counters = client.counters.events
    assert [e["unit_id"] for e in server.kept_events()] == kept
    assert counters.dropped == {"rejected": 3 - len(kept)} and balanced(counters)
    statuses = [p.status for p in server.event_posts]
    assert statuses == ([400, 202] if kept else [400])
    if kept:
        assert server.event_posts[0].batch != server.event_posts[1].batch


def test_flush_gives_up_after_its_timeout_and_keeps_the_events(server, recording):
    server.publish({1: 100})
    server.events_down = True
    with recording() as client:
        client.record_outcome("u")
        began = time.monotonic()
        assert not client.flush(0.3)
        assert 0.25 < time.monotonic() - began < 0.8
        assert client.counters.events.buffered == 1
        server.events_down = False
        assert client.flush(5)


def test_a_server_without_the_events_endpoint_keeps_the_events_waiting(server, recording):
    server.publish({1: 100})
    server.events_missing = True  # an Mlab from before events: 404
    with recording() as client:
        client.record_outcome("u")
        assert not client.flush(0.3)
        counters = client.counters.events
        assert counters.buffered == 1 and counters.retries >= 1 and "takes no events" in counters.last_error
        server.events_missing = False  # upgraded
        assert client.flush(5) and [e["unit_id"] for e in server.kept_events()] == ["u"]


def test_close_sends_what_is_left_within_its_second(server, recording):
    server.publish({1: 100})
    client = recording(event_interval=60).start()
    for i in range(200):
        client.predict(ROW, unit_id=f"u{i}")
    began = time.monotonic()
    client.close()
    assert time.monotonic() - began < 1.0
    assert len(server.kept_events()) == 200 and client.counters.events.sent == 200
    client.predict(ROW, unit_id="after-close")  # models stay usable, and record nothing more
    assert client.counters.events.exposures == 200 and client.flush(1)


@pytest.mark.parametrize("fault", ["server holds the request", "server down"])
def test_close_gives_up_within_its_second_and_counts_what_was_lost(server, recording, fault):
    server.publish({1: 100})
    client = recording(event_interval=60).start()
    for i in range(20):
        client.record_outcome(f"u{i}")
    if fault == "server down":
        server.stop()
    else:
        server.events_delay = 3.0
    began = time.monotonic()
    client.close()
    assert time.monotonic() - began < 1.0
    counters = client.counters.events
    assert counters.dropped == {"closed": 20} and counters.buffered == 0 and balanced(counters)


def test_recording_can_be_turned_off(server, make_client):
    server.publish({1: 100})
    with make_client(record_events=False) as client:
        client.predict(ROW, unit_id="u")
        client.record_outcome("u")
        assert client.flush(1)
        assert client.counters.events == EventCounters()
    assert server.event_posts == []


def test_concurrent_predictions_send_each_unit_once(server, recording):
    server.publish({1: 50, 2: 50})
    with recording() as client:

        def work(offset: int) -> None:
            for i in range(1000):
                client.predict(ROW, unit_id=f"u{(i + offset) % 300}")

        threads = [threading.Thread(target=work, args=(n * 77,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert client.flush(5)
        counters = client.counters.events
    assert sorted(e["unit_id"] for e in server.kept_events()) == sorted(f"u{i}" for i in range(300))
    assert counters.exposures == 300 and counters.repeated_exposures == 3700 and balanced(counters)


def test_event_options_are_checked():
    from mlab_client import ModelClient

    for option in ("event_buffer", "event_batch", "dedup_units"):
        with pytest.raises(ValueError, match=option):
            ModelClient("http://127.0.0.1:1", "scene", "t", **{option: 0})
    with pytest.raises(ValueError, match="event_interval"):
        ModelClient("http://127.0.0.1:1", "scene", "t", event_interval=0)


def test_units_the_contract_refuses_are_dropped_before_sending(server, recording):
    server.publish({1: 100})
    with recording(event_interval=60) as client:
        client.predict(ROW, unit_id="x" * 300)  # too long for the contract: never sent, counted
        client.predict(ROW, unit_id="caf\u00e9-\u7528\u6237")
        assert client.flush(5)
        counters = client.counters.events
    assert [e["unit_id"] for e in server.kept_events()] == ["caf\u00e9-\u7528\u6237"]
    assert counters.dropped == {"rejected": 1} and counters.sent == 1 and balanced(counters)


def test_events_are_encoded_as_ascii_json_whatever_the_unit():
    import json

    text = events.encode_event(("outcome", "odd-\ud800", None, None, "click", 1.0, 1_700_000_000.0))
    assert text.isascii() and json.loads(text)["unit_id"] == "odd-\ud800"
    exposure = json.loads(events.encode_event(("exposure", "u", 3, 2, float("nan"), 1_700_000_000.1234)))
    assert exposure == {"type": "exposure", "unit_id": "u", "revision": 3, "version": 2, "ts": 1_700_000_000.123}
