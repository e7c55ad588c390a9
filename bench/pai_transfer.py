"""Benchmark: the PAI data path's transfers through the PAI emulator's OSS, Mlab's code against Alibaba's SDK.

    python -m bench.pai_transfer [--rows 1000000] [--model-mib 50] [--rounds 5]

- upload: a 1,000,000-row sample (.npz, as the pai engine writes it) with ``data_path.stage_sample``
  (OssStore: multipart above the threshold, each part retried, the SDK's CRC64 check) against the official
  SDK's plain ``put_object`` of the same file;
- download: a 50 MiB model with ``data_path.fetch_output`` (report.json first, then model.onnx capped, written
  to a temporary file, sha256-checked against the report, renamed into place) against the official SDK's
  plain ``get_object`` of the same object read into memory.

Target: each ratio ≤ 1.2 (medians of the rounds, alternating sides). Both sides talk to the same emulator on
loopback, so the emulator's own work (MD5 ETag, CRC64, disk) is in both.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._report import Report, exit_code

TARGET = 1.2


def _sample(rows: int, path: Path) -> None:
    from apps.training.trainer import SampleData, save_sample

    rng = np.random.default_rng(7)
    numeric = {
        name: rng.normal(size=rows)
        for name in ("age", "signup_days", "is_vip", "price", "seller_rating", "discount", "position", "hour")
    }
    categorical = {
        name: np.array(values, dtype=object)[rng.integers(0, len(values), rows)]
        for name, values in (
            ("gender", ["f", "m", "u"]),
            ("city_tier", ["1", "2", "3", "4"]),
            ("category", ["books", "toys", "food", "phones", "shoes", "garden"]),
        )
    }
    label = (rng.random(rows) < 0.1).astype(np.float64)
    save_sample(path, SampleData(columns={**numeric, **categorical}, label=label))


def _sdk_client(emulator):
    import alibabacloud_oss_v2 as oss

    config = oss.config.load_default()
    config.region = emulator.region
    config.endpoint = emulator.oss_endpoint
    config.credentials_provider = oss.credentials.StaticCredentialsProvider(
        emulator.access_key_id, emulator.access_key_secret
    )
    return oss.Client(config)


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--model-mib", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    import alibabacloud_oss_v2 as oss

    from apps.training.pai.data_path import fetch_output, output_uri, stage_sample
    from apps.training.pai.emulator import PaiEmulator

    with tempfile.TemporaryDirectory(prefix="mlab-bench-pai-") as directory:
        root = Path(directory)
        sample = root / "sample.npz"
        _sample(args.rows, sample)
        model = os.urandom(args.model_mib * 1024 * 1024)
        sample_mib = sample.stat().st_size / 2**20
        with PaiEmulator(work_dir=root / "emulator", step_delay=0) as emulator:
            store = emulator.oss_store()
            sdk = _sdk_client(emulator)
            out = output_uri(store, 1)
            _, out_key = out.removeprefix("oss://").split("/", 1)
            store.upload_bytes(model, out_key + "model.onnx")
            report_json = {
                "model_file": {"name": "model.onnx", "sha256": hashlib.sha256(model).hexdigest(), "size": len(model)}
            }
            store.upload_bytes(json.dumps(report_json).encode(), out_key + "report.json")

            def mlab_up() -> None:
                stage_sample(store, 2, sample)

            def sdk_up() -> None:
                with sample.open("rb") as body:
                    sdk.put_object(oss.PutObjectRequest(bucket=emulator.bucket, key="bench/sample.npz", body=body))

            def mlab_down() -> None:
                with tempfile.TemporaryDirectory(dir=root) as dest:
                    fetched = fetch_output(store, out, dest)
                    assert fetched.size == len(model)

            def sdk_down() -> None:
                got = sdk.get_object(oss.GetObjectRequest(bucket=emulator.bucket, key=out_key + "model.onnx"))
                assert len(got.body.read()) == len(model)

            for action in (mlab_up, sdk_up, mlab_down, sdk_down):  # warm up connections and caches
                action()
            times: dict[str, list[float]] = {"mlab_up": [], "sdk_up": [], "mlab_down": [], "sdk_down": []}
            for round_ in range(args.rounds):
                pairs = ((mlab_up, sdk_up), (mlab_down, sdk_down))
                for first, second in pairs:
                    order = (first, second) if round_ % 2 == 0 else (second, first)
                    for action in order:
                        times[action.__name__].append(_timed(action))

    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"sample {args.rows:,} rows = {sample_mib:.1f} MiB; model {args.model_mib} MiB; median of {args.rounds}")
    for name, seconds in medians.items():
        print(f"  {name:<10} {seconds * 1000:8.1f} ms")
    report = Report("pai_transfer")
    upload = medians["mlab_up"] / medians["sdk_up"]
    download = medians["mlab_down"] / medians["sdk_down"]
    report.check("upload sample: Mlab / SDK put_object", upload, at_most=TARGET, unit="×")
    report.check("download model: Mlab / SDK get_object", download, at_most=TARGET, unit="×")
    report.note("sample size", sample_mib, unit="MiB")
    report.note("Mlab upload", medians["mlab_up"] * 1000, unit="ms")
    report.note("Mlab download", medians["mlab_down"] * 1000, unit="ms")
    print(f"  upload ratio {upload:.2f}, download ratio {download:.2f} (target ≤ {TARGET})")
    return report


if __name__ == "__main__":
    sys.exit(exit_code(main(), "pai_transfer"))
