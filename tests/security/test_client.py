"""Issue 11 items 13 and 14: what a client process accepts from a server, and what the server accepts in a
deployment. (The SDK's own tests check the same in more detail: mlab_client/tests.)"""

from __future__ import annotations

import time

import pytest

from apps.deploy.services import model_version_register, scene_create
from mlab_client import ModelClient
from mlab_client.snapshot import SnapshotStore
from mlab_client.tests.builders import build
from mlab_client.tests.config_server import ConfigServer
from tests.factories import TrainingRunFactory


@pytest.fixture
def config_server():
    server = ConfigServer()
    server.add_version(1, build("lr").onnx)
    server.start()
    yield server
    server.stop()


def test_item_13_a_config_over_the_cap_is_refused_unread_and_counted(config_server):
    """Issue 11 item 13: a 40 MB config cost a client 514 MB. The client refuses a config over
    max_config_bytes (8 MiB by default) without reading it, counts it, and keeps serving the last good one."""
    config_server.publish({1: 100})
    with ModelClient(config_server.url, config_server.scene, config_server.token, wait=5, retry_base=0.05,
                     retry_cap=0.2, record_events=False) as client:  # fmt: skip
        assert client.revision == 1
        config_server.publish_raw(dict(config_server.config, revision=2, padding="x" * (9 * 1024 * 1024)))
        deadline = time.monotonic() + 10
        while client.counters.configs_refused == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.counters.configs_refused >= 1 and client.revision == 1


@pytest.mark.django_db
def test_item_13_the_server_caps_overrides_per_deployment(api, user):
    """Issue 11 item 13: overrides per deployment are capped on the server: a 400 naming overrides."""
    scene = scene_create(name="capped", user=user)
    model_version_register(run=TrainingRunFactory(owner=user), scene=scene, user=user)
    body = {"splits": [{"version": 1, "weight": 100}], "overrides": {f"u{i}": 1 for i in range(10_001)}}
    response = api.post(f"/api/v1/scenes/{scene.name}/deployments/", body, format="json")
    assert response.status_code == 400 and "At most 10000 overrides" in response.json()["overrides"][0]


@pytest.mark.parametrize("scene", ["scene\n", "scene\n../../etc", "../up", "a/b", ""])
def test_item_14_a_snapshot_scene_name_is_matched_whole(tmp_path, scene):
    """Issue 11 item 14: the snapshot's scene-name check accepted a trailing newline; it is a full match."""
    with pytest.raises(ValueError, match="cannot name a snapshot directory"):
        SnapshotStore(tmp_path, scene)
