"""Helpers of the PAI engine's tests: a built-in template's payload, the stub trainer's command, polling."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from apps.templates.payload import build_payload
from apps.templates.validation import template_specs, validate_run_params
from apps.training.pai.statuses import is_finished

STUB_TRAINER = Path(__file__).with_name("pai_stub_trainer.py")
BUILTIN_SLUGS = ("binary-lr", "binary-gbdt", "binary-rf", "regression-linear")


def template_payload(template, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The payload a run of ``template`` with ``params`` sends to an engine (validated, exclusion applied)."""
    cleaned = validate_run_params(template, params or {})
    return build_payload(
        template_slug=template.slug, task=template.task_type, specs=template_specs(template), cleaned=cleaned
    )


def stub_trainer_command(*extra: str, sleep: float = 0.1) -> list[str]:
    return [
        sys.executable,
        str(STUB_TRAINER),
        "--hyperparameters",
        "{hyperparameters}",
        "--input",
        "{input}",
        "--output",
        "{output}",
        "--sleep",
        str(sleep),
        *extra,
    ]


def poll(client, job_id: str, *, until=is_finished, timeout: float = 30.0) -> tuple[dict[str, Any], list[str]]:
    """Poll GetTrainingJob through the client until ``until(status)``; return the job and every status seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        job = client.get_training_job(job_id)
        if not seen or seen[-1] != job["Status"]:
            seen.append(job["Status"])
        if until(job["Status"]):
            return job, seen
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['Status']} after {timeout} s (saw {seen})")
        time.sleep(0.02)
