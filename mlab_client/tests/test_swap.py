"""Predictions from 8 threads during a burst of publications: each one is served wholly by one revision."""

from __future__ import annotations

import threading

from mlab_client import Model
from mlab_client.routing import Router

UNITS = [f"user-{i}" for i in range(64)] + ["vip-a", "vip-b"]
REVISIONS = [
    ({1: 50, 2: 50}, {"vip-a": 3}),
    ({2: 50, 3: 50}, {"vip-a": 1, "vip-b": 2}),
    ({1: 30, 3: 70}, {}),
    ({1: 10, 2: 10, 3: 80}, {"vip-b": 1}),
    ({2: 100}, {"vip-a": 3}),
    ({1: 60, 2: 40}, {}),
    ({3: 100}, {"vip-b": 2}),
    ({1: 34, 2: 33, 3: 33}, {"vip-a": 2}),
]


def test_eight_threads_never_see_half_a_swap(server, make_client, models):
    rows = models[1].rows[:32]
    # Each version's score of each row, from models loaded independently of the client.
    expected = {v: [Model(models[v].onnx).predict(row)[0] for row in rows] for v in models}
    routers = {}

    server.publish(*REVISIONS[0])
    routers[server.revision] = Router.from_config(server.config)
    client = make_client().start()
    stop = threading.Event()
    seen: list[list] = [[] for _ in range(8)]
    errors: list[BaseException] = []

    def predict(slot: int) -> None:
        i = slot
        try:
            while not stop.is_set():
                unit, row = UNITS[i % len(UNITS)], i % len(rows)
                seen[slot].append((unit, row, client.predict(rows[row], unit_id=unit)))
                i += 8
        except BaseException as exc:  # any exception at all is a failure of the swap
            errors.append(exc)

    threads = [threading.Thread(target=predict, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for splits, overrides in REVISIONS[1:]:
        revision = server.publish(splits, overrides)
        routers[revision] = Router.from_config(server.config)
        assert client.wait_for_revision(revision, timeout=10)
        before = sum(len(s) for s in seen)
        while sum(len(s) for s in seen) < before + 400:  # let every revision serve a burst
            threading.Event().wait(0.005)
    stop.set()
    for thread in threads:
        thread.join()

    assert errors == []
    predictions = [item for slot in seen for item in slot]
    assert {p.revision for _, _, p in predictions} == set(routers)
    for unit, row, prediction in predictions:
        # The version is the one this revision's routing gives the unit, and the score is that version's model.
        assert prediction.version == routers[prediction.revision].version_for(unit), (unit, prediction)
        assert abs(prediction.score - expected[prediction.version][row]) <= 1e-6, (unit, row, prediction)
    # The counters add up to exactly the predictions made, per version, despite 8 threads counting at once.
    counted = client.counters.predictions
    for version in models:
        assert counted.get(version, 0) == sum(1 for _, _, p in predictions if p.version == version)
