"""PAI training job statuses, and what they mean for an Mlab run (status, stage, why it failed)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class PaiStatus(StrEnum):
    """The statuses PAI's GetTrainingJob reports, in the order a job that succeeds goes through them."""

    CREATING = "Creating"
    CREATED = "Created"
    INITIALIZING = "Initializing"
    SUBMITTED = "Submitted"
    RUNNING = "Running"
    SUCCEED = "Succeed"
    FAILED = "Failed"
    TERMINATED = "Terminated"
    CREATE_FAILED = "CreateFailed"
    INITIALIZE_FAILED = "InitializeFailed"


SUCCESS_SEQUENCE = (
    PaiStatus.CREATING,
    PaiStatus.CREATED,
    PaiStatus.INITIALIZING,
    PaiStatus.SUBMITTED,
    PaiStatus.RUNNING,
    PaiStatus.SUCCEED,
)
FINISHED = frozenset(
    {
        PaiStatus.SUCCEED,
        PaiStatus.FAILED,
        PaiStatus.TERMINATED,
        PaiStatus.CREATE_FAILED,
        PaiStatus.INITIALIZE_FAILED,
    }
)

# Our run statuses (apps.training.models.TrainingRun.Status values; no Django import here).
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"

_MAPPING: dict[str, tuple[str, str]] = {
    PaiStatus.CREATING: (QUEUED, "PAI: creating the job"),
    PaiStatus.CREATED: (QUEUED, "PAI: job created"),
    PaiStatus.INITIALIZING: (QUEUED, "PAI: preparing data and resources"),
    PaiStatus.SUBMITTED: (QUEUED, "PAI: waiting for compute resources"),
    PaiStatus.RUNNING: (RUNNING, "PAI: training"),
    PaiStatus.SUCCEED: (SUCCEEDED, "PAI: finished"),
    PaiStatus.FAILED: (FAILED, "PAI: training failed"),
    PaiStatus.CREATE_FAILED: (FAILED, "PAI: the job could not be created"),
    PaiStatus.INITIALIZE_FAILED: (FAILED, "PAI: the job could not start"),
    PaiStatus.TERMINATED: (CANCELLED, "PAI: stopped"),
}


def map_status(pai_status: str) -> tuple[str, str]:
    """(our status, stage) for a PAI status. A status this table does not know is still in progress: it is
    reported as running, so a poller keeps polling rather than declaring a result PAI never gave."""
    return _MAPPING.get(pai_status, (RUNNING, f"PAI: {pai_status}"[:64]))


def is_finished(pai_status: str) -> bool:
    return pai_status in FINISHED


def _reason(job: Mapping[str, Any]) -> str:
    message = job.get("ReasonMessage") or ""
    code = job.get("ReasonCode") or ""
    if not message and not code:
        for transition in reversed(job.get("StatusTransitions") or []):
            message = transition.get("ReasonMessage") or ""
            code = transition.get("ReasonCode") or ""
            if message or code:
                break
    if message and code:
        return f"{message} ({code})"
    return message or code or "PAI gave no reason"


def failure_message(job: Mapping[str, Any]) -> str:
    """Why a finished job did not succeed, in plain words (empty for a job that succeeded or still runs)."""
    status = job.get("Status")
    if status == PaiStatus.CREATE_FAILED:
        return f"PAI could not create the training job: {_reason(job)}."
    if status == PaiStatus.INITIALIZE_FAILED:
        return (
            f"PAI could not start the training job (it failed while preparing its data or resources): {_reason(job)}."
        )
    if status == PaiStatus.FAILED:
        return f"The training job failed on PAI: {_reason(job)}."
    if status == PaiStatus.TERMINATED:
        return f"The training job was stopped on PAI: {_reason(job)}."
    return ""
