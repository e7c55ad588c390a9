"""A PAI run's data path, the steps that are not the engine's: the sample up to OSS, the model back.

The pai engine calls, in order (see README, "Running on a real PAI account"):

1. :func:`~.trainer_code.upload_trainer_code` (once per trainer version: skipped when the archive is there);
2. :func:`stage_sample` (the run's sample to ``<prefix>/runs/<run>/input/sample.npz``);
3. :func:`~.request.create_job_body` with ``input_uri`` = the staged sample's URI, ``output_uri`` =
   :func:`output_uri` and ``code`` = step 1's result, then ``PaiClient.create_training_job``;
4. ``PaiClient.get_training_job`` until the job finishes;
5. :func:`fetch_output` (report.json, then model.onnx checked against the sha256 and size the report names).

Nothing here imports Django.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .oss import OssError, OssNotFound, OssStore, StoredObject, parse_oss_uri

SAMPLE_NAME = "sample.npz"
MODEL_NAME = "model.onnx"
REPORT_NAME = "report.json"
MAX_REPORT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class TrainerOutput:
    model_path: Path
    report: dict[str, Any]
    sha256: str
    size: int


def stage_sample(store: OssStore, run_id: int | str, sample_path: str | os.PathLike[str]) -> StoredObject:
    """Upload a run's sample (.npz) where its job's ``train`` channel reads it; returns the object (``.uri``)."""
    return store.upload_file(sample_path, store.run_input_key(run_id, SAMPLE_NAME))


def output_uri(store: OssStore, run_id: int | str) -> str:
    """The ``model`` channel's OutputUri for a run: ``oss://<bucket>/<prefix>/runs/<run>/output/``."""
    return store.uri(store.run_output_prefix(run_id))


def fetch_output(
    store: OssStore, output: str, dest_dir: str | os.PathLike[str], *, max_model_bytes: int | None = None
) -> TrainerOutput:
    """Bring a finished job's report.json and model.onnx from its OSS output (``output``: the channel's
    OutputUri, as GetTrainingJob echoes it) into ``dest_dir``. The model is checked against the sha256 and size
    the trainer wrote into the report. A missing file is an :class:`~.oss.OssNotFound` that lists what the
    output holds."""
    base = output if output.endswith("/") else output + "/"
    dest = Path(dest_dir)
    try:
        report_bytes = store.read_bytes(base + REPORT_NAME, max_bytes=MAX_REPORT_BYTES)
    except OssNotFound:
        raise OssNotFound(_missing(store, base, REPORT_NAME)) from None
    try:
        report = json.loads(report_bytes)
        expected = report["model_file"]
        sha, size = str(expected["sha256"]), int(expected["size"])
    except (ValueError, KeyError, TypeError):
        raise OssError(
            f"{base}{REPORT_NAME} is not a report of Mlab's trainer (no model_file with sha256 and size)."
        ) from None
    limit = size if max_model_bytes is None else min(size, max_model_bytes)
    try:
        fetched = store.download(base + MODEL_NAME, dest / MODEL_NAME, max_bytes=limit, sha256=sha)
    except OssNotFound:
        raise OssNotFound(_missing(store, base, MODEL_NAME)) from None
    return TrainerOutput(model_path=fetched.path, report=report, sha256=fetched.sha256, size=fetched.size)


def _missing(store: OssStore, base: str, name: str) -> str:
    _, prefix = parse_oss_uri(base)
    try:
        held = [item.key[len(prefix) :] for item in store.list(base)]
    except OssError as exc:
        return f"There is no {name} in {base}, and its content could not be listed: {exc}"
    listed = ", ".join(held) if held else "nothing"
    return f"There is no {name} in the job's output {base}; it holds: {listed}."
