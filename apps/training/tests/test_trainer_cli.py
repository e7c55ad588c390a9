"""``python -m apps.training.trainer`` in a real subprocess, as a PAI job runs it: npz and payload in,
model.onnx and report.json out, progress as JSON lines, plain errors and exit statuses, no Django."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from apps.training.trainer import SampleData, save_sample, score_raw, train
from mlab_client import contract

from .trainer_data import builtin_payload, click_sample

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def run_trainer(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO")}
    return subprocess.run(
        [sys.executable, "-m", "apps.training.trainer", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.fixture
def inputs(tmp_path):
    sample, _ = click_sample(1500, seed=4)
    payload = builtin_payload("binary-gbdt", {"train": {"treeCount": 15}})
    save_sample(tmp_path / "sample.npz", sample)
    (tmp_path / "payload.json").write_text(json.dumps(payload))
    return tmp_path, payload, sample


def test_npz_in_model_and_report_out(inputs):
    tmp_path, payload, sample = inputs
    out = tmp_path / "out" / "run-1"
    done = run_trainer("--payload", str(tmp_path / "payload.json"), "--input", str(tmp_path / "sample.npz"),
                       "--output", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    lines = [line for line in printed if "stage" in line]
    # Then the metrics, one line each, for PAI's MetricDefinitions to read.
    metrics = {line["metric"]: line["value"] for line in printed if "metric" in line}
    assert printed == lines + [line for line in printed if "metric" in line]
    assert 0.5 < metrics["auc"] <= 1 and set(metrics) >= {"auc", "ks", "log_loss", "accuracy"}
    stages = [line["stage"] for line in lines]
    assert list(dict.fromkeys(stages)) == ["preparing", "fitting", "evaluating", "exporting", "checking_parity", "done"]
    rounds = [line["message"] for line in lines if line["stage"] == "fitting"][1:]  # after the stage's own line
    assert rounds and rounds[-1] == "Fitting the model: round 15 of 15"  # rounds, a few a second, the last always
    assert lines[-1]["percent"] == 100
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "report.json"]
    report = json.loads((out / "report.json").read_text())
    assert report["parity"]["max_abs_diff"] <= 1e-5 and report["task"] == "binary"
    model_bytes = (out / "model.onnx").read_bytes()
    assert report["model_file"] == {
        "name": "model.onnx",
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "size": len(model_bytes),
    }
    assert metrics["auc"] == report["metrics"]["auc"]

    # A client feeding raw dicts to the written model gets what the trainer's scikit-learn model gives.
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    signature = json.loads(meta[contract.META_SIGNATURE])
    rows = [{name: sample.columns[name][i] for name in sample.columns} for i in range(50)]
    rows.append({**rows[0], "category": "never-seen", "price": None, "gender": None})
    scores = []
    for row in rows:
        feed = {}
        for entry in signature:
            value = row[entry["name"]]
            missing = value is None or (isinstance(value, float) and np.isnan(value))
            if entry["type"] == "number":
                feed[entry["name"]] = np.array([[np.nan if missing else value]], dtype=np.float32)
            else:
                feed[entry["name"]] = np.array([[contract.MISSING_CATEGORY if missing else value]], dtype=object)
        scores.append(session.run([meta[contract.META_SCORE_OUTPUT]], feed)[0][0, 1])
    in_process = train(payload, sample)  # same payload, same sample, same seed: the same model
    columns = {name: np.array([row[name] for row in rows], dtype=sample.columns[name].dtype) for name in sample.columns}
    assert np.abs(np.array(scores) - score_raw(in_process, columns)).max() <= 1e-5


def test_bad_data_exits_1_with_the_plain_reason_and_writes_nothing(inputs):
    tmp_path, _, sample = inputs
    save_sample(tmp_path / "sample.npz", SampleData(sample.columns, np.ones(len(sample.label))))
    out = tmp_path / "out"
    done = run_trainer("--payload", str(tmp_path / "payload.json"), "--input", str(tmp_path / "sample.npz"),
                       "--output", str(out))  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().startswith("The label column 'clicked' has one class only")
    assert "Traceback" not in done.stderr
    assert not out.exists() or not any(out.iterdir())


def test_unreadable_inputs_exit_2(inputs):
    tmp_path, _, _ = inputs
    (tmp_path / "broken.json").write_text("{not json")
    done = run_trainer("--payload", str(tmp_path / "broken.json"), "--input", str(tmp_path / "sample.npz"),
                       "--output", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("Cannot read the payload")
    done = run_trainer("--payload", str(tmp_path / "payload.json"), "--input", str(tmp_path / "missing.npz"),
                       "--output", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("Cannot read the sample")
    assert run_trainer("--payload", "x.json").returncode == 2  # argparse: missing arguments


def test_the_trainer_never_imports_django(inputs):
    tmp_path, _, _ = inputs
    code = (
        "import json, sys\n"
        "from apps.training.trainer import load_sample, train\n"
        f"result = train(json.load(open({str(tmp_path / 'payload.json')!r})), load_sample({str(tmp_path / 'sample.npz')!r}))\n"
        "assert result.report['parity']['max_abs_diff'] <= 1e-5\n"
        "print(sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
