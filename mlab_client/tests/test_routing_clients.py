"""Routing as clients do it: agreement with the server's allocation, and stickiness across processes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from mlab_client.contract import BUCKETS

REPO = Path(__file__).parents[2]


def _documented_version(config: dict, unit: str) -> int:
    """DESIGN.md's bucketing, written out independently of mlab_client.routing, then a linear range scan."""
    if unit in config["overrides"]:
        return config["overrides"][unit]
    bucket = int.from_bytes(hashlib.sha256(f"{config['salt']}:{unit}".encode()).digest()[:8], "big") % BUCKETS
    (version,) = [v for start, end, v in config["allocation"] if start <= bucket < end]
    return version


def test_routing_agrees_with_the_allocation_for_100000_units(server, make_client):
    server.publish({1: 50, 2: 50})
    server.publish({1: 20, 2: 45, 3: 35})  # minimal movement leaves fragmented ranges behind
    server.publish({1: 40, 2: 25, 3: 35}, overrides={"unit-7": 3, "unit-99999": 1})
    config = server.config
    assert len(config["allocation"]) > 3
    units = [f"unit-{i}" for i in range(100_000)]
    with make_client() as client:
        routed = [client.version_for(unit) for unit in units]
    assert routed == [_documented_version(config, unit) for unit in units]
    shares = {v: routed.count(v) / len(units) for v in (1, 2, 3)}
    assert abs(shares[1] - 0.40) < 0.01 and abs(shares[2] - 0.25) < 0.01 and abs(shares[3] - 0.35) < 0.01


_PROCESS = textwrap.dedent(
    """
    import json, sys
    from mlab_client import ModelClient

    url, scene, token = sys.argv[1:4]
    row = {"age": 31.0, "price": 12.5, "clicks_7d": 4.0, "city": "shanghai", "device": "ios"}
    with ModelClient(url, scene, token, wait=1) as client:
        units = [f"unit-{i}" for i in range(20000)]
        versions = [client.version_for(unit) for unit in units]
        served = [client.predict(row, unit_id=unit) for unit in units[:2000]]
        print(json.dumps({
            "status": client.status,
            "revision": client.revision,
            "versions": versions,
            "served": [[p.version, p.score] for p in served],
        }))
    """
)


def _run_client_process(server, hash_seed: str) -> dict:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    result = subprocess.run(
        [sys.executable, "-c", _PROCESS, server.url, server.scene, server.token],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout)


def test_units_stick_to_their_version_across_client_processes(server, make_client):
    server.publish({1: 90, 2: 10}, overrides={"unit-3": 2})
    first = _run_client_process(server, hash_seed="1")
    second = _run_client_process(server, hash_seed="2")  # another str hash: routing must not depend on it
    assert first["status"] == second["status"] == "live" and first["revision"] == second["revision"] == 1
    assert first["versions"] == second["versions"]
    assert first["served"] == second["served"]
    assert first["versions"][3] == 2
    with make_client() as here:
        assert first["versions"] == [here.version_for(f"unit-{i}") for i in range(20000)]
    share = first["versions"].count(2) / len(first["versions"])
    assert abs(share - 0.10) < 0.01
