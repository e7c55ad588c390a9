"""``python -m apps.training.trainer [--payload payload.json | --hyperparameters hp.json] [--input sample.npz]
[--output DIR]``

What a PAI job runs, and what the local engine can run in a subprocess. Without arguments it reads PAI's
layout (see :mod:`.pai_layout`): the hyper-parameters from ``/ml/input/config/hyperparameters.json`` (or
``$PAI_CONFIG_DIR``, or ``$PAI_HPS``), the sample from the ``train`` channel (``/ml/input/data/train/`` or
``$PAI_INPUT_TRAIN``), and writes to the ``model`` channel (``/ml/output/model/`` or ``$PAI_OUTPUT_MODEL``).
Hyper-parameters are turned back into exactly the payload a local run gets
(``apps.training.pai.hyperparameters``).

Writes DIR/model.onnx, then DIR/report.json (each atomically, the report last, so a complete report means a
complete run; the report names the model's sha256 and size under ``model_file``); prints progress as JSON
lines ``{"stage", "percent", "message"}`` and then one ``mlab-metric <name>=<value>`` line per metric on
stdout (what PAI's ProgressDefinitions and MetricDefinitions read). On failure nothing is written, the plain
reason is on stderr and the exit status is 1 (the data or the payload), 2 (the command line or an unreadable
input) or 3 (a bug: the reason is followed by the traceback). The fit uses MLAB_TRAIN_THREADS
threads (unset or 0: every core the process may run on).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

from . import pai_layout
from .errors import TrainerError
from .sample import load_sample
from .training import train

EXIT_TRAINING, EXIT_INPUT, EXIT_BUG = 1, 2, 3


def _write_atomically(path: Path, content: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; readers run as other users
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _progress(stage: str, percent: int, message: str) -> None:
    print(json.dumps({"stage": stage, "percent": percent, "message": message}), flush=True)


def _fail(message: str, status: int) -> int:
    print(message, file=sys.stderr, flush=True)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.training.trainer", description=__doc__.splitlines()[0])
    given = parser.add_mutually_exclusive_group()
    given.add_argument("--payload", type=Path, help="the training payload (JSON)")
    given.add_argument("--hyperparameters", type=Path, help="a PAI job's hyperparameters.json (default: PAI's layout)")
    parser.add_argument(
        "--input", type=Path, help="the sample (.npz written by save_sample), or a channel directory holding one"
    )
    parser.add_argument("--output", type=Path, help="directory for model.onnx and report.json")
    args = parser.parse_args(argv)
    source = args.payload or args.hyperparameters or "PAI's hyper-parameters"
    try:
        from apps.training.pai.hyperparameters import from_hyperparameters  # pure Python, no Django

        if args.payload:
            payload = json.loads(args.payload.read_text(encoding="utf-8"))
        elif args.hyperparameters:
            payload = from_hyperparameters(json.loads(args.hyperparameters.read_text(encoding="utf-8")))
        else:
            payload = from_hyperparameters(pai_layout.hyperparameters())
    except (OSError, ValueError) as exc:
        return _fail(f"Cannot read the payload {source}: {exc}", EXIT_INPUT)
    sample_path = args.input or pai_layout.input_channel()
    output = args.output or pai_layout.output_channel()
    try:
        sample_path = pai_layout.sample_file(sample_path)
        sample = load_sample(sample_path)
    except (OSError, ValueError, KeyError) as exc:
        return _fail(f"Cannot read the sample {sample_path}: {exc}", EXIT_INPUT)
    try:
        result = train(payload, sample, progress=_progress)
        output.mkdir(parents=True, exist_ok=True)
        _write_atomically(output / "model.onnx", result.onnx_bytes)
        # Whoever reads the output back (Mlab, from OSS) checks the model against these.
        model_file = {
            "name": "model.onnx",
            "sha256": hashlib.sha256(result.onnx_bytes).hexdigest(),
            "size": len(result.onnx_bytes),
        }
        report = json.dumps({**result.report, "model_file": model_file}, indent=1, allow_nan=False).encode()
        _write_atomically(output / "report.json", report)
        for line in pai_layout.metric_lines(result.report.get("metrics") or {}):
            print(line, flush=True)
    except TrainerError as exc:
        return _fail(str(exc), EXIT_TRAINING)
    except OSError as exc:
        return _fail(f"Cannot write to {output}: {exc}", EXIT_INPUT)
    except Exception as exc:  # a bug: still one plain line first, for the run page
        return _fail(
            f"The trainer failed unexpectedly ({type(exc).__name__}: {exc}).\n{traceback.format_exc()}", EXIT_BUG
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
