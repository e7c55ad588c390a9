"""The local engine: sample → trainer (scikit-learn → ONNX, parity checked) → artifact, inside the RQ job."""

from __future__ import annotations

import logging
import time

from django.conf import settings

from apps.training import trainer
from apps.training.datasources import DataSourceError
from apps.training.heartbeat import Heartbeat
from apps.training.models import TrainingRun
from apps.training.services import runs as run_services

from .sample import fetch_run_sample, trainer_sample

logger = logging.getLogger(__name__)
Status = TrainingRun.Status

# The bar: sampling 2–10 %, the trainer's own 0–100 % mapped onto 10–95 %, storing the artifact 97 %.
TRAINER_START, TRAINER_SPAN = 10, 85
# The trainer reports at least every half second while a model fits; a cancel is seen within this much more.
CANCEL_CHECK_SECONDS = 0.5
INTERNAL_ERROR = (
    "An internal error stopped this run (the server log has the details under run {run}). Relaunch it; if it "
    "fails again, tell the Mlab team."
)


class RunCancelled(Exception):
    """The business developer cancelled the run; raised from the progress callback to stop the trainer."""


class _Progress:
    """The trainer's progress callback: records stage and percent, and stops the run when cancelled."""

    def __init__(self, run_id: int):
        self.run_id = run_id
        self._checked = 0.0

    def check_cancelled(self) -> None:
        """Raise RunCancelled if a cancel was requested, asking the database at most every CANCEL_CHECK_SECONDS."""
        if time.monotonic() - self._checked >= CANCEL_CHECK_SECONDS:
            self.check_cancelled_now()

    def check_cancelled_now(self) -> None:
        """Raise RunCancelled if a cancel was requested (one query)."""
        self._checked = time.monotonic()
        if run_services.training_run_cancel_requested(self.run_id):
            raise RunCancelled

    def __call__(self, stage: str, percent: int, message: str) -> None:
        scaled = TRAINER_START + round(TRAINER_SPAN * percent / 100)
        run_services.training_run_progress(self.run_id, stage=stage, progress=scaled, message=message)
        self.check_cancelled()


def plain_error(error: Exception) -> str:
    """What a business developer reads on the run page."""
    if isinstance(error, DataSourceError):
        return f"The sample could not be read from the data source: {error}"
    if isinstance(error, trainer.ParityError):
        return f"{error} The run failed so that a model that scores differently from the trained one is never served."
    return str(error)


def execute(run: TrainingRun) -> None:
    """Run ``run`` on this worker. Safe to call twice: a second delivery finds the claim or a finished run."""
    with Heartbeat(run.pk) as beat:
        if not beat.claimed:
            logger.info("run %s is already being executed elsewhere; this delivery does nothing", run.pk)
            return
        run.refresh_from_db()
        if run.is_finished:
            return
        if run.status == Status.QUEUED and not run_services.training_run_start(run.pk, stage="sampling"):
            return  # cancelled meanwhile
        progress = _Progress(run.pk)
        try:
            run_services.training_run_progress(run.pk, stage="sampling", progress=2, message="Reading the sample")
            sample = fetch_run_sample(run)
            run_services.training_run_log(run.pk, f"Sample read: {len(sample):,} rows.", stage="sampling")
            progress.check_cancelled_now()
            result = trainer.train(
                run.payload, trainer_sample(sample), progress=progress, threads=settings.MLAB_TRAIN_THREADS
            )
            del sample
            progress.check_cancelled_now()
            run_services.training_run_progress(
                run.pk, stage="storing", progress=97, message="Storing the model artifact"
            )
            run_services.training_run_succeed(run.pk, onnx_bytes=result.onnx_bytes, report=result.report)
        except RunCancelled:
            run_services.training_run_mark_cancelled(run.pk, message="Cancelled; nothing was saved.")
        except (DataSourceError, trainer.TrainerError) as error:
            run_services.training_run_fail(run.pk, error=plain_error(error))
        except Exception:
            logger.exception("training run %s failed unexpectedly", run.pk)
            run_services.training_run_fail(run.pk, error=INTERNAL_ERROR.format(run=run.pk))
