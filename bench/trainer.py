"""The trainer against a plain script on the same sample: time ratio and peak-memory ratio.

    python -m bench.trainer [--rows 1000000] [--template binary-lr]

Each side runs in a fresh subprocess (so peak RSS is its own): the plain script builds one float matrix
from the same columns (median imputation, scaling for linear models, one-hot of the categories), fits the
same estimator and exports it with skl2onnx; the trainer also evaluates, checks parity and writes the
report. Issue 4's targets: time ratio ≤ 1.2, peak RSS ratio ≤ 1.5.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _sample(rows: int, template: str):
    from apps.training.tests.trainer_data import click_sample, price_sample

    return price_sample(rows) if template == "regression-linear" else click_sample(rows)[0]


def _mrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def trainer_side(path: str, payload_path: str) -> dict:
    from apps.training.trainer import load_sample, train

    sample = load_sample(path)
    payload = json.loads(Path(payload_path).read_text())
    baseline = _mrss_mib()
    started = time.perf_counter()
    result = train(payload, sample)
    return {"seconds": time.perf_counter() - started, "rss_mib": _mrss_mib(), "loaded_mib": baseline,
            "auc": result.report["metrics"].get("auc"), "timings": result.report["timings"]}  # fmt: skip


def plain_side(path: str, payload_path: str) -> dict:
    import numpy as np
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import OneHotEncoder

    from apps.training.trainer import load_sample
    from apps.training.trainer.plan import plan_from_payload

    sample = load_sample(path)
    plan = plan_from_payload(json.loads(Path(payload_path).read_text()))
    baseline = _mrss_mib()
    started = time.perf_counter()
    numeric = np.column_stack([sample.columns[n] for n in plan.numeric])
    numeric = np.where(np.isnan(numeric), np.nanmedian(numeric, axis=0), numeric)
    if not plan.trees:
        numeric = (numeric - numeric.mean(axis=0)) / numeric.std(axis=0)
    categorical = np.column_stack(
        [np.where(np.equal(sample.columns[n], None), "", sample.columns[n]) for n in plan.categorical]
    )
    encoder = OneHotEncoder(max_categories=plan.max_categories, handle_unknown="ignore", sparse_output=False)
    matrix = np.hstack([numeric, encoder.fit_transform(categorical)]).astype(np.float32 if plan.trees else np.float64)
    train_rows, _ = train_test_split(
        np.arange(len(matrix)), test_size=plan.split.test_ratio, random_state=plan.split.seed
    )
    plan.estimator.fit(matrix[train_rows], sample.label[train_rows])
    to_onnx(
        plan.estimator,
        initial_types=[("X", FloatTensorType([None, matrix.shape[1]]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return {"seconds": time.perf_counter() - started, "rss_mib": _mrss_mib(), "loaded_mib": baseline}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--template", default="binary-lr")
    parser.add_argument("--side", choices=["trainer", "plain"])
    parser.add_argument("--sample")
    parser.add_argument("--payload")
    args = parser.parse_args()
    if args.side:
        side = trainer_side if args.side == "trainer" else plain_side
        print(json.dumps(side(args.sample, args.payload)))
        return
    from apps.training.tests.trainer_data import builtin_payload
    from apps.training.trainer import save_sample

    fast = {"binary-gbdt": {"train": {"treeCount": 20}}, "binary-rf": {"train": {"treeNum": 10}}}
    with tempfile.TemporaryDirectory() as tmp:
        sample_path, payload_path = f"{tmp}/sample.npz", f"{tmp}/payload.json"
        save_sample(sample_path, _sample(args.rows, args.template))
        Path(payload_path).write_text(json.dumps(builtin_payload(args.template, fast.get(args.template))))
        results = {}
        for side in ("plain", "trainer"):
            done = subprocess.run(
                [sys.executable, "-m", "bench.trainer", "--side", side, "--sample", sample_path, "--payload", payload_path],
                cwd=ROOT, capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[side] = json.loads(done.stdout.splitlines()[-1])
    plain, trainer = results["plain"], results["trainer"]
    print(f"{args.template}, {args.rows} rows")
    print(f"  plain script: {plain['seconds']:.2f} s, peak RSS {plain['rss_mib']:.0f} MiB")
    print(f"  trainer:      {trainer['seconds']:.2f} s, peak RSS {trainer['rss_mib']:.0f} MiB  {trainer['timings']}")
    print(
        f"  time ratio {trainer['seconds'] / plain['seconds']:.2f} (target ≤ 1.2, the trainer also evaluates and checks parity)"
    )
    print(f"  peak RSS ratio {trainer['rss_mib'] / plain['rss_mib']:.2f} (target ≤ 1.5)")


if __name__ == "__main__":
    main()
