"""The local snapshot: round trip, restart with the server down, corruption detected and ignored, atomicity."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlab_client import NotReadyError
from mlab_client.snapshot import SnapshotStore, write_atomic
from mlab_client.tests.conftest import wait_until

ROW = {"age": 31.0, "price": 12.5, "clicks_7d": 4.0, "city": "shanghai", "device": "ios"}
UNITS = [f"user-{i}" for i in range(300)]
REPO = Path(__file__).parents[2]


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def snapshotted(server, make_client, tmp_path):
    """A scene at revision 2 (v1/v2 split, v3 override) whose snapshot a first client wrote."""
    server.publish({1: 100})
    server.publish({1: 50, 2: 50}, overrides={"vip": 3})
    with make_client(snapshot_dir=str(tmp_path)) as client:
        answers = [client.predict(ROW, unit_id=unit) for unit in UNITS]
    return tmp_path, answers


def test_the_snapshot_holds_the_config_and_every_model_it_routes_to(server, snapshotted, models):
    root, _ = snapshotted
    scene = root / server.scene
    stored = json.loads((scene / "config.json").read_text())
    assert stored["config"] == server.config and stored["etag"] == server.etag
    names = {p.name for p in (scene / "models").iterdir()}
    assert names == {f"{v['sha256']}.onnx" for v in server.config["versions"]}
    assert {(scene / "models" / n).read_bytes() for n in names} == {models[v].onnx for v in (1, 2, 3)}
    assert not [p for p in scene.rglob("*") if p.name.endswith(".tmp")]


def test_restart_with_the_server_down_serves_the_snapshot(server, snapshotted, make_client):
    root, answers = snapshotted
    server.stop()
    client = make_client(snapshot_dir=str(root)).start()
    assert client.status == "snapshot" and client.revision == 2 and client.versions == [1, 2, 3]
    assert client.counters.refresh_failures >= 1 and client.counters.fetches == {}
    assert [client.predict(ROW, unit_id=unit) for unit in UNITS] == answers
    assert client.predict(ROW, unit_id="vip").version == 3
    server.start()  # the same revision: the server answers 304 and the client is live, nothing downloaded
    deadline = time.monotonic() + 5
    while client.status != "live" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.status == "live" and client.revision == 2
    assert sum(server.artifact_requests.values()) == 1 + 1 + 1  # only the first client's downloads


def test_a_restart_reads_models_from_the_snapshot_instead_of_downloading(server, snapshotted, make_client):
    root, _ = snapshotted
    downloads = sum(server.artifact_requests.values())
    with make_client(snapshot_dir=str(root)) as client:
        assert client.status == "live" and client.counters.fetches == {"snapshot": 3}
    assert sum(server.artifact_requests.values()) == downloads


def test_a_new_revision_rewrites_the_snapshot_and_drops_unused_models(server, snapshotted, make_client, models):
    root, _ = snapshotted
    store = SnapshotStore(root, server.scene)

    def revision_on_disk():
        snapshot = store.load()
        return snapshot.config.revision if snapshot is not None else None

    with make_client(snapshot_dir=str(root)):
        server.publish({3: 100})
        assert wait_until(lambda: revision_on_disk() == 3)
    snapshot = store.load()
    assert snapshot.config.used_versions == [3]
    assert [p.name for p in store.models.iterdir()] == [f"{server.config['versions'][0]['sha256']}.onnx"]


@pytest.mark.parametrize(
    "damage", ["model byte", "model missing", "config edited", "config truncated", "config not json"]
)
def test_a_corrupt_snapshot_is_detected_and_ignored(server, snapshotted, make_client, damage, caplog):
    root, _ = snapshotted
    scene = root / server.scene
    model_file = sorted((scene / "models").iterdir())[0]
    config_file = scene / "config.json"
    if damage == "model byte":
        _flip_a_byte(model_file)
    elif damage == "model missing":
        model_file.unlink()
    elif damage == "config edited":  # valid JSON, but not what was checksummed
        document = json.loads(config_file.read_text())
        document["config"]["overrides"]["vip"] = 1
        config_file.write_text(json.dumps(document))
    elif damage == "config truncated":
        config_file.write_bytes(config_file.read_bytes()[:-40])
    else:
        config_file.write_bytes(b"\x00\xff" * 10)
    server.stop()
    client = make_client(snapshot_dir=str(root)).start()
    assert client.status == "starting" and client.revision is None
    with pytest.raises(NotReadyError):
        client.predict(ROW, unit_id="u")
    assert "ignoring" in caplog.text


def test_a_corrupt_model_file_is_downloaded_again_and_the_snapshot_healed(server, snapshotted, make_client):
    root, answers = snapshotted
    model_file = sorted((root / server.scene / "models").iterdir())[0]
    _flip_a_byte(model_file)
    downloads = sum(server.artifact_requests.values())
    with make_client(snapshot_dir=str(root)) as client:
        assert [client.predict(ROW, unit_id=unit) for unit in UNITS] == answers
        assert client.counters.fetches == {"snapshot": 2, "http": 1}
    assert sum(server.artifact_requests.values()) == downloads + 1
    server.publish({1: 100})  # a new revision makes the client write the snapshot again, healed
    with make_client(snapshot_dir=str(root)) as client:
        pass
    assert SnapshotStore(root, server.scene).load() is not None


def test_a_snapshot_that_cannot_be_completed_is_counted_and_the_swap_still_happens(server, snapshotted, make_client):
    root, _ = snapshotted
    with make_client(snapshot_dir=str(root)) as client:
        for path in (root / server.scene / "models").iterdir():
            path.unlink()  # someone cleaned the directory under a running client
        revision = server.publish({1: 50, 2: 50})
        assert wait_until(lambda: client.counters.snapshot_failures == 1)
        assert client.revision == revision
    assert SnapshotStore(root, server.scene).load() is None  # never a snapshot that names absent models


def test_write_atomic_replaces_the_file_whole(tmp_path):
    target = tmp_path / "config.json"
    write_atomic(target, b"old")
    write_atomic(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


_WRITER = textwrap.dedent(
    """
    import json
    import sys

    from mlab_client.config import SceneConfig
    from mlab_client.snapshot import SnapshotStore

    root, scene = sys.argv[1], sys.argv[2]
    configs = json.loads(sys.stdin.read())
    store = SnapshotStore(root, scene)
    blobs = {k: bytes.fromhex(v) for k, v in configs.pop("blobs").items()}
    parsed = [SceneConfig.parse(c, scene=scene) for c in configs["configs"]]
    print("ready", flush=True)
    i = 0
    while True:
        config = parsed[i % len(parsed)]
        store.save(config, f'"etag-{config.revision}"', blobs)
        i += 1
    """
)


def test_a_writer_killed_mid_write_leaves_a_loadable_snapshot(server, models, tmp_path):
    """A real process rewrites the snapshot in a loop (two revisions, different models) and is SIGKILLed at
    random moments: the snapshot left behind always loads, as one revision or the other, never a mix."""
    server.publish({1: 100})
    first = dict(server.config)
    server.publish({2: 60, 3: 40})
    second = dict(server.config)
    blobs = {v["sha256"]: models[v["version"]].onnx.hex() for c in (first, second) for v in c["versions"]}
    payload = json.dumps({"configs": [first, second], "blobs": blobs})
    rng = random.Random(7)
    for _ in range(6):
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path), server.scene],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        writer.stdin.write(payload)
        writer.stdin.close()
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        snapshot = SnapshotStore(tmp_path, server.scene).load()
        assert snapshot is not None
        expected = first if snapshot.config.revision == 1 else second
        assert snapshot.config.raw == expected and snapshot.etag == f'"etag-{expected["revision"]}"'
        assert set(snapshot.artifacts) == {v["sha256"] for v in expected["versions"]}


@pytest.mark.parametrize("scene", ["scene\n", "scene\n../x", "../scene", ".hidden", "", "a/b"])
def test_a_scene_name_that_could_leave_the_snapshot_directory_is_refused(tmp_path, scene):
    with pytest.raises(ValueError, match="cannot name a snapshot directory"):
        SnapshotStore(tmp_path, scene)
