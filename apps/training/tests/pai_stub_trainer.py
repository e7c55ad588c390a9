"""A stand-in for Mlab's trainer in the PAI emulator's tests.

It does what a PAI job's algorithm does with what PAI gives it: reads the hyper-parameters file and the
input channel, prints progress (the job's log), waits a little, then writes a model file and a report into
the output channel. ``--exit-code`` makes it fail on purpose; ``--sleep`` sets how long it "trains".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hyperparameters", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--sleep", type=float, default=0.1)
    parser.add_argument("--exit-code", type=int, default=0)
    args = parser.parse_args()

    hyperparameters = json.loads(Path(args.hyperparameters).read_text(encoding="utf-8"))
    data = Path(args.input).read_bytes()
    print(f"stub trainer: {len(hyperparameters)} hyper-parameters, {len(data)} input bytes", flush=True)
    steps = 4
    for step in range(1, steps + 1):
        time.sleep(args.sleep / steps)
        print(f"stub trainer: step {step}/{steps}", flush=True)
    if args.exit_code:
        print("stub trainer: failing on purpose (bad data in column 'age')", flush=True)
        return args.exit_code

    output = Path(args.output)
    (output / "model.onnx").write_bytes(b"STUB-ONNX:" + data[:64])
    report = {
        "hyperparameters": hyperparameters,
        "input_bytes": len(data),
        "pai_env": sorted(k for k in os.environ if k.startswith("PAI_")),
        "mlab_pai_env": sorted(k for k in os.environ if k.startswith("MLAB_PAI_")),
        "cwd": os.getcwd(),
    }
    (output / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print("stub trainer: wrote model.onnx and report.json", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
