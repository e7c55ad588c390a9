"""The trainer: payload + sample → fitted pipeline → metrics → ONNX → parity check → TrainResult."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from apps.templates.nodes import Task

from . import data, evaluation, export
from . import pipeline as pipelines
from .plan import LocalPlan, plan_from_payload
from .sample import SampleData

Progress = Callable[[str, int, str], None]

# Stage name, percent reached when it starts, and what the run page says meanwhile.
STAGES = {
    "preparing": (2, "Checking the sample and splitting it"),
    "fitting": (10, "Fitting the model"),
    "evaluating": (70, "Evaluating on the held-out rows"),
    "exporting": (80, "Exporting to ONNX"),
    "checking_parity": (90, "Checking that the exported model scores like the trained one"),
    "done": (100, "Done"),
}


@dataclass
class TrainResult:
    """``onnx_bytes``: the artifact (mlab_client.contract); ``report``: JSON-able facts about the run;
    ``model``: the fitted scikit-learn pipeline (in memory only; it takes ``FeatureBlocks``)."""

    onnx_bytes: bytes
    report: dict[str, Any]
    model: Any = field(default=None, repr=False)
    plan: LocalPlan | None = field(default=None, repr=False)


# While the model fits, progress is reported at least every ROUND_REPORT_SECONDS, even when the bar does not
# move: each report is where the caller may stop the run (the local engine raises RunCancelled there). The
# bar moves at most every ROUND_MOVE_SECONDS: each report is a database write for the local engine, and 60
# fast rounds reported one by one cost more than the rounds (1.5 s of a 7 s run at a million rows).
ROUND_REPORT_SECONDS = 0.5
ROUND_MOVE_SECONDS = 0.2


class _Stages:
    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}  # seconds spent in each stage, by stage name
        self._current: str | None = None
        self._started = 0.0
        self._last_percent, self._last_report = 0, 0.0

    def enter(self, stage: str) -> None:
        now = time.perf_counter()
        if self._current:
            self.timings[self._current] = round(now - self._started, 4)
        self._current, self._started = stage, now
        if self.progress is not None:
            percent, message = STAGES[stage]
            self._last_percent, self._last_report = percent, now
            self.progress(stage, percent, message)

    def rounds(self, done: int, total: int) -> None:
        """Boosting rounds move the bar across the fitting stage (see ROUND_MOVE_SECONDS; the last round always
        shows), and report at least every ROUND_REPORT_SECONDS besides, so that a cancel waits for one round."""
        if self.progress is None:
            return
        start, end = STAGES["fitting"][0], STAGES["evaluating"][0]
        percent = start + (end - start) * done // total
        since = time.perf_counter() - self._last_report
        moved = percent > self._last_percent and (since >= ROUND_MOVE_SECONDS or done == total)
        if moved or since >= ROUND_REPORT_SECONDS:
            self._last_percent, self._last_report = max(percent, self._last_percent), time.perf_counter()
            self.progress("fitting", self._last_percent, f"Fitting the model: round {done} of {total}")


def train(
    payload: Mapping[str, Any], sample: SampleData, *, progress: Progress | None = None, threads: int | None = None
) -> TrainResult:
    """Train the chain ``payload`` describes on ``sample`` and return the verified ONNX model and a report.

    ``payload`` is what ``apps.templates.payload.build_payload`` produces; ``sample`` holds the raw columns
    the sample node names. ``progress(stage, percent, message)`` is called as each stage starts, and while a
    boosted model fits, after rounds (see ``_Stages.rounds``); an exception it raises stops the training.
    ``threads``: how many the fit may use (see ``plan.train_threads``: by default MLAB_TRAIN_THREADS, else
    every core).
    Raises PayloadError, TrainingDataError (bad data, named by column), ExportError or ParityError,
    all TrainerError with a plain message.
    """
    started = time.perf_counter()
    stages = _Stages(progress)
    stages.enter("preparing")
    plan = plan_from_payload(payload, threads=threads)
    prepared = data.prepare(plan, sample)
    for name in data.constant_features(plan, prepared):
        plan.notes.append(
            f"Column '{name}' has the same value in every row of the sample: it cannot tell rows apart, "
            "so the model does not use it."
        )
    train_rows, test_rows = data.split(plan, prepared.label)

    stages.enter("fitting")
    model = pipelines.build(
        plan,
        pipelines.fill_values(plan, prepared, train_rows),
        pipelines.vocabularies(plan, prepared, train_rows),
    )
    column_std = pipelines.fit(plan, model, prepared, train_rows, rounds=stages.rounds)
    gc.collect()

    stages.enter("evaluating")
    test_label = prepared.label[test_rows]
    expected = pipelines.scores(plan, model, prepared, test_rows)
    test_blocks = prepared.blocks(test_rows)
    del prepared
    if plan.task == Task.BINARY:
        evaluated = evaluation.binary(test_label, expected[:, 1], **_binary_options(plan))
    else:
        evaluated = evaluation.regression(test_label, expected, **plan.evaluation)
    owners = pipelines.column_owners(plan, model)
    importance = evaluation.importance(model.named_steps["model"], owners, column_std)

    stages.enter("exporting")
    signature = pipelines.signature(plan, model)
    onnx_bytes = export.export(plan, model, signature)

    stages.enter("checking_parity")
    difference = export.parity(expected, export.onnx_scores(onnx_bytes, plan, test_blocks))

    stages.enter("done")
    report = {
        "template": plan.template,
        "task": plan.task.value,
        "algorithm": plan.train_node,
        "label": plan.label,
        "rows": {"train": int(len(train_rows)), "test": int(len(test_rows))},
        "threads": plan.threads,
        **evaluated,
        "feature_importance": importance,
        "parity": {"max_abs_diff": difference, "tolerance": export.PARITY_TOLERANCE, "rows": int(len(test_rows))},
        "signature": signature,
        "model": {"format": "onnx", "size": len(onnx_bytes), "opset": export.TARGET_OPSET},
        "notes": plan.notes,
        "timings": {**stages.timings, "total": round(time.perf_counter() - started, 4)},
    }
    return TrainResult(onnx_bytes=onnx_bytes, report=report, model=model, plan=plan)


def _binary_options(plan: LocalPlan) -> dict[str, Any]:
    return {"threshold": plan.evaluation["threshold"], "bin_count": plan.evaluation["bin_count"]}


def score_raw(result: TrainResult, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """scikit-learn's score for raw columns (as in a SampleData): the probability of 1, or the prediction."""
    plan = result.plan
    assert plan is not None and result.model is not None
    prepared = data.features(plan, columns, fitting=False)
    blocks = prepared.blocks(np.arange(len(prepared.label)))
    scores = export.sklearn_scores(plan, result.model, blocks)
    return scores[:, 1] if plan.task == Task.BINARY else scores
