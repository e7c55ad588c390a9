"""``python -m apps.training.trainer (--payload payload.json | --hyperparameters hp.json) --input sample.npz
--output DIR``

A PAI job passes its hyper-parameters (``/ml/input/config/hyperparameters.json``), which
``apps.training.pai.hyperparameters`` turns back into exactly the payload a local run gets. What a PAI job runs, and what the local engine can run in a subprocess: writes DIR/model.onnx, then
DIR/report.json (each atomically, the report last, so a complete report means a complete run); prints
progress as JSON lines ``{"stage", "percent", "message"}`` on stdout. On failure nothing is written, the
plain reason is on stderr and the exit status is 1 (the data or the payload), 2 (the command line or an
unreadable input) or 3 (a bug: the reason is followed by the traceback). The fit uses MLAB_TRAIN_THREADS
threads (unset or 0: every core the process may run on).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

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
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--payload", type=Path, help="the training payload (JSON)")
    given.add_argument("--hyperparameters", type=Path, help="a PAI job's hyperparameters.json")
    parser.add_argument("--input", required=True, type=Path, help="the sample (.npz written by save_sample)")
    parser.add_argument("--output", required=True, type=Path, help="directory for model.onnx and report.json")
    args = parser.parse_args(argv)
    source = args.payload or args.hyperparameters
    try:
        payload = json.loads(source.read_text(encoding="utf-8"))
        if args.hyperparameters:
            from apps.training.pai.hyperparameters import from_hyperparameters  # pure Python, no Django

            payload = from_hyperparameters(payload)
    except (OSError, ValueError) as exc:
        return _fail(f"Cannot read the payload {source}: {exc}", EXIT_INPUT)
    try:
        sample = load_sample(args.input)
    except (OSError, ValueError, KeyError) as exc:
        return _fail(f"Cannot read the sample {args.input}: {exc}", EXIT_INPUT)
    try:
        result = train(payload, sample, progress=_progress)
        args.output.mkdir(parents=True, exist_ok=True)
        _write_atomically(args.output / "model.onnx", result.onnx_bytes)
        report = json.dumps(result.report, indent=1, allow_nan=False).encode()
        _write_atomically(args.output / "report.json", report)
    except TrainerError as exc:
        return _fail(str(exc), EXIT_TRAINING)
    except OSError as exc:
        return _fail(f"Cannot write to {args.output}: {exc}", EXIT_INPUT)
    except Exception as exc:  # a bug: still one plain line first, for the run page
        return _fail(
            f"The trainer failed unexpectedly ({type(exc).__name__}: {exc}).\n{traceback.format_exc()}", EXIT_BUG
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
